// Package runtime is a small task and actor runtime in the style of Ray:
// tasks are functions run on a bounded pool of workers, actors are values
// whose method calls run one at a time in submission order, and both return
// typed futures.
//
// The package's name shadows the standard library's runtime; import it
// under another name:
//
//	import rt "github.com/ringo-ml/ringo/runtime"
//
// # Tasks and futures
//
// Submit runs a function on a worker and returns a *Future; Get waits for
// its value, Wait for the first k of many, GetAll for all of them:
//
//	r, _ := rt.New(rt.Config{Workers: 8})
//	defer r.Close()
//	futs := make([]*rt.Future[Page], len(urls))
//	for i, u := range urls {
//		futs[i] = rt.Submit(r, func(ctx context.Context) (Page, error) { return fetch(ctx, u) })
//	}
//	pages, err := rt.GetAll(ctx, futs...)
//
// A future can be a dependency of a later task (Then, or the After option):
// the task is queued only once its dependencies have completed, so no
// worker waits for them, and it fails with ErrDependency without running
// if one failed.
//
// Errors and panics come back as errors: a failed task's future fails
// with a *TaskError that wraps the function's error, or ErrPanic with the
// panic's value and stack. Cancellation goes through contexts: each task's
// function gets a context that Future.Cancel and Shutdown cancel.
//
// # Actors
//
// Spawn builds an actor's state on the actor's own goroutine; Call and Do
// submit method calls, which run one at a time in the order they were
// submitted, each returning a future:
//
//	child, _ := rt.Spawn(r, func(context.Context) (*Child, error) { return &Child{Name: "Alice"}, nil })
//	rt.Do(child, (*Child).Grow)
//	greeting, err := rt.Call(child, (*Child).Greet).Get(ctx)
//
// Actors can be named (ActorName) and found again (Lookup); Stop ends one
// gracefully, Kill at once.
//
// # Supervision
//
// Like Ray: a failed task runs again up to MaxRetries times when the
// failure is a system failure (ErrWorkerLost) or, with RetryExceptions or
// RetryIf, an application error. An actor whose method panics has
// crashed: its constructor runs again, up to MaxRestarts times; the calls
// that were waiting fail with ErrActorRestarted unless they allow retries
// (MaxTaskRetries, MaxRetries), in which case they run on the new instance
// in their order. With no restarts left the actor is dead and its calls
// fail with ErrActorDead.
//
// # Ownership
//
// A Runtime owns every goroutine it starts: workers start when tasks are
// queued and exit when the queue is empty, each actor has one goroutine
// until it stops, and Close (or Shutdown with a deadline) stops them all.
// A future completes only once its work has stopped running.
//
// # Remote workers
//
// The same model across processes. Functions (Register) and actor types
// (RegisterActor, RegisterMethod) are registered by name in every process
// at start-up; worker processes call Serve, and a driver calls Connect to
// reach them through package rendezvous and authenticated QUIC. A remote
// call (RemoteFunc.Remote, ActorClass.Spawn, Method.Remote) names what to
// run and carries arguments encoded by a registered, size-bounded Codec;
// nothing received is run as code, and an unknown name, a type mismatch
// or an oversized value is an error. Placement tells which worker ran a
// task. A lost worker's tasks fail with ErrWorkerLost and retry elsewhere
// under MaxRetries; its actors restart on another worker under
// MaxRestarts, as they would locally. docs/runtime.md compares every call
// with Ray's.
package runtime
