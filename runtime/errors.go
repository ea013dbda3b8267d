package runtime

import (
	"context"
	"errors"
	"fmt"
)

// Errors that callers branch on with errors.Is. A task's or an actor call's
// future fails with a *TaskError whose chain holds one of them (or the
// function's own error).
var (
	// ErrClosed: the runtime was shut down before the work could finish,
	// or work was submitted after that.
	ErrClosed = errors.New("runtime closed")
	// ErrCanceled: the future was cancelled (Future.Cancel). It wraps
	// context.Canceled, so errors.Is(err, context.Canceled) holds too.
	ErrCanceled = fmt.Errorf("canceled: %w", context.Canceled)
	// ErrPanic: the function panicked; the TaskError carries the value and
	// the stack.
	ErrPanic = errors.New("panic")
	// ErrDependency: a future the task depended on (After, Then) failed, so
	// the task never ran; the chain also holds the dependency's error.
	ErrDependency = errors.New("dependency failed")
	// ErrActorDead: the actor was killed, stopped, failed to construct, or
	// crashed with no restarts left; the chain holds the cause.
	ErrActorDead = errors.New("actor dead")
	// ErrActorRestarted: the actor crashed and restarted while the call was
	// waiting or running, and the call did not allow retries.
	ErrActorRestarted = errors.New("actor restarted")
	// ErrWorkerLost: the worker running a task was lost — a system failure
	// rather than an application error, retried whenever MaxRetries allows,
	// as Ray retries tasks whose worker died. Locally a task reports it by
	// returning an error that wraps ErrWorkerLost.
	ErrWorkerLost = errors.New("worker lost")
	// ErrTooManyPending: the actor's mailbox held MaxPendingCalls calls.
	ErrTooManyPending = errors.New("too many pending calls")
	// ErrNotFound: no live actor has the name given to Lookup.
	ErrNotFound = errors.New("actor not found")
	// ErrNameTaken: a live actor already has the name given to Spawn.
	ErrNameTaken = errors.New("actor name taken")
	// ErrInvalid: bad arguments (nil function, negative limits, a nil
	// future); nothing ran.
	ErrInvalid = errors.New("invalid argument")
)

// TaskError describes why a task or an actor call failed. Every error a
// task's or call's future fails with is a *TaskError; Future.Get's own
// context errors are returned as they are.
type TaskError struct {
	// Name is the task's or call's name: the Name option, or the function's
	// name, e.g. "main.index" or "main.(*Child).Greet".
	Name string
	// Attempts is how many times the function ran (0 if it never started).
	Attempts int
	// Err is why it failed: the function's error, or one of ErrPanic,
	// ErrCanceled, ErrClosed, ErrDependency, ErrActorDead,
	// ErrActorRestarted, ErrInvalid (wrapping their causes).
	Err error
	// Panic is the value the function panicked with, when Err is ErrPanic.
	Panic any
	// Stack is the panicking goroutine's stack, when Err is ErrPanic.
	Stack []byte
}

func (e *TaskError) Error() string {
	if e.Panic != nil || errors.Is(e.Err, ErrPanic) {
		return fmt.Sprintf("runtime: %s: %v: %v (attempt %d)", e.Name, e.Err, e.Panic, e.Attempts)
	}
	if e.Attempts > 1 {
		return fmt.Sprintf("runtime: %s: %v (after %d attempts)", e.Name, e.Err, e.Attempts)
	}
	return fmt.Sprintf("runtime: %s: %v", e.Name, e.Err)
}

// Unwrap gives Err and, when the function panicked with an error value,
// that error too.
func (e *TaskError) Unwrap() []error {
	if pe, ok := e.Panic.(error); ok {
		return []error{e.Err, pe}
	}
	return []error{e.Err}
}
