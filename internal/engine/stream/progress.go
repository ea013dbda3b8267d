package stream

// LaneProgress is how far one lane of a running operation has come.
// Steps are counted within the lane: one per segment the schedule moves
// over the link in that direction, after an empty opening frame (step 0)
// where the operation opens with one.
type LaneProgress struct {
	Peer   int
	Send   bool
	Step   int // the step being worked on (== Steps when Done)
	Steps  int
	Chunk  int // chunk of Step being worked on
	Chunks int // chunks in Step
	Done   bool
	Probe  Probe // the liveness probe of Peer, while not Done
}

// Progress appends every lane's progress to dst, receives first, then
// sends, each in plan order. It reads only atomics and what does not
// change while the operation runs, so it may be called from any
// goroutine between onRun and the end of Run.
func (o *Op) Progress(dst []LaneProgress) []LaneProgress {
	o.mu.Lock()
	defer o.mu.Unlock()
	for pass := range 2 {
		for k, w := range o.workers {
			ln := &o.plan.lanes[k]
			if ln.Send == (pass == 1) {
				dst = append(dst, o.laneProgress(ln, w))
			}
		}
	}
	return dst
}

func (o *Op) laneProgress(ln *Lane, w *Worker) LaneProgress {
	s := LaneProgress{Peer: ln.Peer, Send: ln.Send, Steps: len(ln.items)}
	item, ch := int(w.item.Load()), int(w.chunk.Load())
	if item >= len(ln.items) {
		item = len(ln.items) - 1
	}
	if item < 0 || len(ln.items) == 0 {
		s.Done = true
		return s
	}
	var done int64
	var chunks int
	if ln.Send {
		j := ln.items[item]
		done, chunks = o.sendDone[j].Load(), o.sendChunks[j]
	} else {
		i := ln.items[item]
		done, chunks = o.recvDone[i].Load(), o.recvChunks[i]
	}
	if item == len(ln.items)-1 && done >= int64(chunks) {
		s.Done, s.Step = true, len(ln.items)
		return s
	}
	s.Step, s.Chunk, s.Chunks = item, ch, chunks
	s.Probe = o.probeOf(ln.Peer)
	return s
}
