package runtime_test

import (
	"context"
	"fmt"
	"time"

	rt "github.com/ringo-ml/ringo/runtime"
)

// database is what the retrieve task reads, one item per index.
var database = []string{"Learning", "Ray", "Flexible", "Distributed", "Python", "for", "Machine", "Learning"}

// Item is a retrieved record.
type Item struct {
	Index int
	Value string
}

// retrieve looks an item up, slowly: each lookup takes a few milliseconds,
// so eight run in parallel take about as long as one.
func retrieve(ctx context.Context, item int) (Item, error) {
	select {
	case <-time.After(time.Duration(item) * time.Millisecond):
	case <-ctx.Done():
		return Item{}, ctx.Err()
	}
	return Item{item, database[item]}, nil
}

// Ray's classic: a remote function run over eight inputs in parallel, the
// results gathered in order, like
//
//	@ray.remote
//	def retrieve(item): return item, database[item]
//	ray.get([retrieve.remote(i) for i in range(8)])
func ExampleSubmit() {
	ctx := context.Background()
	r, err := rt.New(rt.Config{Workers: 8})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	futures := make([]*rt.Future[Item], len(database))
	for i := range database {
		futures[i] = rt.Submit(r, func(ctx context.Context) (Item, error) { return retrieve(ctx, i) })
	}
	items, err := rt.GetAll(ctx, futures...)
	if err != nil {
		panic(err)
	}
	for _, it := range items {
		fmt.Println(it.Index, it.Value)
	}
	// Output:
	// 0 Learning
	// 1 Ray
	// 2 Flexible
	// 3 Distributed
	// 4 Python
	// 5 for
	// 6 Machine
	// 7 Learning
}

// Child is an actor's state: calls run one at a time, in order, so its
// methods need no locks.
type Child struct {
	name string
	age  int
}

// Grow makes the child a year older.
func (c *Child) Grow(context.Context) error {
	c.age++
	return nil
}

// Greet introduces the child.
func (c *Child) Greet(context.Context) (string, error) {
	return fmt.Sprintf("Hi, I'm %s and I'm %d years old", c.name, c.age), nil
}

// An actor with state that grows and greets, like a Ray actor class:
// the calls run in the order they were made.
func ExampleSpawn() {
	ctx := context.Background()
	r, err := rt.New(rt.Config{})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	alice, err := rt.Spawn(r, func(context.Context) (*Child, error) {
		return &Child{name: "Alice"}, nil
	}, rt.ActorName("alice"))
	if err != nil {
		panic(err)
	}
	for range 3 {
		rt.Do(alice, (*Child).Grow) // no need to wait: calls keep their order
	}
	greeting, err := rt.Call(alice, (*Child).Greet).Get(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(greeting)

	// A named actor can be found again, like ray.get_actor.
	same, err := rt.Lookup[*Child](r, "alice")
	if err != nil {
		panic(err)
	}
	rt.Do(same, (*Child).Grow)
	greeting, err = rt.Call(same, (*Child).Greet).Get(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(greeting)
	// Output:
	// Hi, I'm Alice and I'm 3 years old
	// Hi, I'm Alice and I'm 4 years old
}

// Wait returns the first k futures to complete, like ray.wait.
func ExampleWait() {
	ctx := context.Background()
	r, err := rt.New(rt.Config{Workers: 2})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	release := make(chan struct{})
	fast := rt.Submit(r, func(context.Context) (string, error) { return "fast", nil })
	slow := rt.Submit(r, func(ctx context.Context) (string, error) {
		select {
		case <-release:
			return "slow", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	ready, pending, err := rt.Wait(ctx, []*rt.Future[string]{slow, fast}, 1)
	if err != nil {
		panic(err)
	}
	v, _ := ready[0].Get(ctx)
	fmt.Println(v, len(pending))
	close(release)
	// Output: fast 1
}

// A task that depends on another's result, like passing an object ref to
// a Ray task: it is queued once its dependency has completed.
func ExampleThen() {
	ctx := context.Background()
	r, err := rt.New(rt.Config{})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	item := rt.Submit(r, func(ctx context.Context) (Item, error) { return retrieve(ctx, 3) })
	upper := rt.Then(r, item, func(_ context.Context, it Item) (int, error) { return len(it.Value), nil })
	n, err := upper.Get(ctx)
	fmt.Println(n, err)
	// Output: 11 <nil>
}
