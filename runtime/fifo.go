package runtime

// fifo is a queue on a ring buffer that also takes items at its front (a
// call that runs again goes first).
type fifo[T any] struct {
	buf        []T
	head, size int
}

func (q *fifo[T]) len() int { return q.size }

func (q *fifo[T]) grow() {
	if q.size < len(q.buf) {
		return
	}
	nb := make([]T, max(8, 2*len(q.buf)))
	for i := range q.size {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

func (q *fifo[T]) push(v T) {
	q.grow()
	q.buf[(q.head+q.size)%len(q.buf)] = v
	q.size++
}

func (q *fifo[T]) pushFront(v T) {
	q.grow()
	q.head = (q.head + len(q.buf) - 1) % len(q.buf)
	q.buf[q.head] = v
	q.size++
}

func (q *fifo[T]) pop() (T, bool) {
	var zero T
	if q.size == 0 {
		return zero, false
	}
	v := q.buf[q.head]
	q.buf[q.head] = zero
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return v, true
}

// remove deletes the first item for which match is true, keeping the order
// of the others.
func (q *fifo[T]) remove(match func(T) bool) bool {
	for i := range q.size {
		if !match(q.buf[(q.head+i)%len(q.buf)]) {
			continue
		}
		for j := i; j+1 < q.size; j++ {
			q.buf[(q.head+j)%len(q.buf)] = q.buf[(q.head+j+1)%len(q.buf)]
		}
		var zero T
		q.buf[(q.head+q.size-1)%len(q.buf)] = zero
		q.size--
		return true
	}
	return false
}

// drain empties the queue and returns its items in order.
func (q *fifo[T]) drain() []T {
	out := make([]T, 0, q.size)
	for {
		v, ok := q.pop()
		if !ok {
			return out
		}
		out = append(out, v)
	}
}
