package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Errors of remote calls, matched with errors.Is like the others.
var (
	// ErrNotRegistered: the worker has no function, actor type or method
	// of the name the call gave.
	ErrNotRegistered = errors.New("not registered")
	// ErrTypeMismatch: the call's argument or result type differs from
	// the one the name was registered with, or a value did not decode as
	// its type.
	ErrTypeMismatch = errors.New("type mismatch")
	// ErrTooLarge: an encoded argument or result is over the message
	// limit (ClusterConfig.MaxMessageBytes, WorkerConfig.MaxMessageBytes).
	ErrTooLarge = errors.New("message too large")
	// ErrNoWorkers: no live worker could take the task or actor within
	// ClusterConfig.PlacementTimeout.
	ErrNoWorkers = errors.New("no live worker")
	// ErrProtocol: a peer sent a message that does not decode.
	ErrProtocol = errors.New("malformed message")
)

// RemoteError is an error a function or actor method returned, or a panic
// it raised, on a worker. Only its text crosses the network: match it by
// type and fields, not with errors.Is against the worker's sentinels.
type RemoteError struct {
	// Worker names the worker it happened on.
	Worker string
	// Message is the error's text, or the panic's value printed with %v.
	Message string
	// Panicked is set when the function panicked; Stack is then the
	// worker's stack (cut at 64 KiB).
	Panicked bool
	Stack    []byte
}

func (e *RemoteError) Error() string {
	if e.Panicked {
		return fmt.Sprintf("panic on worker %s: %s", e.Worker, e.Message)
	}
	return fmt.Sprintf("on worker %s: %s", e.Worker, e.Message)
}

// Unwrap gives ErrPanic for a panic, so that errors.Is(err, ErrPanic)
// holds for remote panics as for local ones.
func (e *RemoteError) Unwrap() error {
	if e.Panicked {
		return ErrPanic
	}
	return nil
}

// funcEntry is a registered function, untyped.
type funcEntry struct {
	name             string
	argType, resType string
	// run decodes the argument and returns what runs the function and
	// encodes its result (at most limit bytes).
	run func(arg []byte, limit int) (func(context.Context) ([]byte, error), error)
}

// actorEntry is a registered actor type, untyped.
type actorEntry struct {
	name               string
	argType, stateType string
	// spawn decodes the argument and starts an instance on r (no
	// restarts: the driver supervises), returning its handle (*Actor[S]).
	spawn   func(r *Runtime, arg []byte) (actorHost, error)
	methods map[string]*methodEntry // guarded by registry
}

// methodEntry is a registered actor method, untyped.
type methodEntry struct {
	name             string
	argType, resType string
	// call decodes the argument and submits the call to h.
	call func(h actorHost, arg []byte, limit int) (*Future[[]byte], error)
}

// actorHost is a worker-side actor instance: an *Actor[S].
type actorHost interface {
	Kill()
	ready() *Future[struct{}]
}

func (a *Actor[S]) ready() *Future[struct{}] {
	return Call(a, func(S, context.Context) (struct{}, error) { return struct{}{}, nil }, MaxRetries(0), Name(a.c.name+" constructor"))
}

var registry = struct {
	sync.RWMutex
	funcs  map[string]*funcEntry
	actors map[string]*actorEntry
}{funcs: make(map[string]*funcEntry), actors: make(map[string]*actorEntry)}

// resultTooLarge is a result over the limit, found on the worker.
type resultTooLarge struct{ size, limit int }

func (e *resultTooLarge) Error() string {
	return fmt.Sprintf("result is %d bytes, the limit is %d", e.size, e.limit)
}

func (e *resultTooLarge) Unwrap() error { return ErrTooLarge }

func checkName(what, name string) {
	if name == "" || len(name) > maxNameBytes || !printableName([]byte(name)) {
		panic(fmt.Sprintf("runtime: %s name %q must be 1-%d printable bytes", what, name, maxNameBytes))
	}
}

func mustCodec[T any](what string) Codec[T] {
	c, err := codecFor[T]()
	if err != nil {
		panic(fmt.Sprintf("runtime: %s: %v", what, err))
	}
	return c
}

// encodeBounded encodes v and checks the result against limit.
func encodeBounded[T any](c Codec[T], v T, limit int) ([]byte, error) {
	b, err := c.Encode(nil, v)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding a %s: %v", ErrInvalid, typeName(reflect.TypeFor[T]()), err)
	}
	if len(b) > limit {
		return nil, &resultTooLarge{size: len(b), limit: limit}
	}
	return b, nil
}

// decodeAs decodes b as a T, naming the type in the error.
func decodeAs[T any](c Codec[T], b []byte, what string) (T, error) {
	v, err := c.Decode(b)
	if err != nil {
		return v, fmt.Errorf("%w: %s does not decode as %s: %v", ErrTypeMismatch, what, typeName(reflect.TypeFor[T]()), err)
	}
	return v, nil
}

// RemoteFunc is a function registered by name for remote calls, and its
// typed handle: f.Remote(cluster, arg) runs it on a worker.
type RemoteFunc[A, R any] struct {
	name             string
	argType, resType string
	arg              Codec[A]
	res              Codec[R]
}

// Name is the name the function is registered under.
func (f *RemoteFunc[A, R]) Name() string { return f.name }

// Register registers fn under name, on every process of a cluster, at
// start-up (typically in a package-level var), like @ray.remote: workers
// run it when a call names it; drivers call it through the returned
// handle. A and R need codecs (RegisterCodec). Calls name the function
// and carry A's and R's type names, which the worker checks: nothing
// received is run as code. It panics on an empty or duplicate name, a nil
// fn or a missing codec (a set-up error, like http.Handle).
func Register[A, R any](name string, fn func(ctx context.Context, arg A) (R, error)) *RemoteFunc[A, R] {
	checkName("function", name)
	if fn == nil {
		panic(fmt.Sprintf("runtime: Register %q: nil function", name))
	}
	f := Declare[A, R](name)
	e := &funcEntry{
		name: name, argType: f.argType, resType: f.resType,
		run: func(arg []byte, limit int) (func(context.Context) ([]byte, error), error) {
			a, err := decodeAs(f.arg, arg, "the argument")
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) ([]byte, error) {
				r, err := fn(ctx, a)
				if err != nil {
					return nil, err
				}
				return encodeBounded(f.res, r, limit)
			}, nil
		},
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.funcs[name]; dup {
		panic(fmt.Sprintf("runtime: Register: function %q registered twice", name))
	}
	registry.funcs[name] = e
	return f
}

// Declare returns a handle for a function registered under name on the
// workers, for a driver that does not link the function itself. The
// workers refuse calls whose A or R differ from the registered ones
// (ErrTypeMismatch). It panics on a bad name or a missing codec.
func Declare[A, R any](name string) *RemoteFunc[A, R] {
	checkName("function", name)
	return &RemoteFunc[A, R]{
		name:    name,
		argType: typeName(reflect.TypeFor[A]()),
		resType: typeName(reflect.TypeFor[R]()),
		arg:     mustCodec[A]("function " + name + "'s argument"),
		res:     mustCodec[R]("function " + name + "'s result"),
	}
}

// ActorClass is an actor type registered by name for remote actors, and
// its typed handle: class.Spawn(cluster, arg) places an instance, built by
// the constructor from arg, on a worker. S is the state, A the
// constructor's argument.
type ActorClass[S, A any] struct {
	name               string
	argType, stateType string
	arg                Codec[A]
	entry              *actorEntry // nil when declared
}

// Name is the name the actor type is registered under.
func (c *ActorClass[S, A]) Name() string { return c.name }

// RegisterActor registers an actor type under name, on every process of a
// cluster, at start-up, like @ray.remote on a class: ctor builds the state
// from the argument Spawn gives. Register its methods with RegisterMethod.
// It panics on an empty or duplicate name, a nil ctor or a missing codec.
func RegisterActor[S, A any](name string, ctor func(ctx context.Context, arg A) (S, error)) *ActorClass[S, A] {
	checkName("actor type", name)
	if ctor == nil {
		panic(fmt.Sprintf("runtime: RegisterActor %q: nil constructor", name))
	}
	c := DeclareActor[S, A](name)
	c.entry = &actorEntry{
		name: name, argType: c.argType, stateType: c.stateType,
		methods: make(map[string]*methodEntry),
		spawn: func(r *Runtime, arg []byte) (actorHost, error) {
			a, err := decodeAs(c.arg, arg, "the constructor's argument")
			if err != nil {
				return nil, err
			}
			return Spawn(r, func(ctx context.Context) (S, error) { return ctor(ctx, a) })
		},
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.actors[name]; dup {
		panic(fmt.Sprintf("runtime: RegisterActor: actor type %q registered twice", name))
	}
	registry.actors[name] = c.entry
	return c
}

// DeclareActor returns a handle for an actor type registered under name on
// the workers, for a driver that does not link it. The workers refuse a
// Spawn whose S or A differ from the registered ones.
func DeclareActor[S, A any](name string) *ActorClass[S, A] {
	checkName("actor type", name)
	return &ActorClass[S, A]{
		name:      name,
		argType:   typeName(reflect.TypeFor[A]()),
		stateType: typeName(reflect.TypeFor[S]()),
		arg:       mustCodec[A]("actor type " + name + "'s constructor argument"),
	}
}

// Method is a registered actor method and its typed handle:
// m.Remote(actor, arg) calls it on a remote actor.
type Method[S, A, R any] struct {
	actor, name      string
	argType, resType string
	arg              Codec[A]
	res              Codec[R]
}

// Name is "actor type.method".
func (m *Method[S, A, R]) Name() string { return m.actor + "." + m.name }

// RegisterMethod registers fn as the method name of class, e.g.
// RegisterMethod(counter, "add", (*Counter).Add) for
// func (c *Counter) Add(ctx context.Context, n int64) (int64, error).
// It panics on an empty or duplicate name, a nil fn, a missing codec, or
// a class that was only declared.
func RegisterMethod[S, CA, A, R any](class *ActorClass[S, CA], name string, fn func(S, context.Context, A) (R, error)) *Method[S, A, R] {
	if class == nil || class.entry == nil {
		panic(fmt.Sprintf("runtime: RegisterMethod %q: the class was not registered with RegisterActor", name))
	}
	if fn == nil {
		panic(fmt.Sprintf("runtime: RegisterMethod %s.%s: nil method", class.name, name))
	}
	m := DeclareMethod[S, CA, A, R](class, name)
	e := &methodEntry{
		name: name, argType: m.argType, resType: m.resType,
		call: func(h actorHost, arg []byte, limit int) (*Future[[]byte], error) {
			a, err := decodeAs(m.arg, arg, "the argument")
			if err != nil {
				return nil, err
			}
			actor, ok := h.(*Actor[S])
			if !ok { // cannot happen: spawn made it from the same class
				return nil, fmt.Errorf("%w: actor instance is not a %s", ErrTypeMismatch, class.stateType)
			}
			return Call(actor, func(s S, ctx context.Context) ([]byte, error) {
				r, err := fn(s, ctx, a)
				if err != nil {
					return nil, err
				}
				return encodeBounded(m.res, r, limit)
			}, MaxRetries(0), Name(m.Name())), nil
		},
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := class.entry.methods[name]; dup {
		panic(fmt.Sprintf("runtime: RegisterMethod: %s.%s registered twice", class.name, name))
	}
	class.entry.methods[name] = e
	return m
}

// DeclareMethod returns a handle for a method registered on the workers,
// for a driver that does not link the actor type.
func DeclareMethod[S, CA, A, R any](class *ActorClass[S, CA], name string) *Method[S, A, R] {
	if class == nil {
		panic(fmt.Sprintf("runtime: DeclareMethod %q: nil class", name))
	}
	checkName("method", name)
	return &Method[S, A, R]{
		actor: class.name, name: name,
		argType: typeName(reflect.TypeFor[A]()),
		resType: typeName(reflect.TypeFor[R]()),
		arg:     mustCodec[A]("method " + class.name + "." + name + "'s argument"),
		res:     mustCodec[R]("method " + class.name + "." + name + "'s result"),
	}
}

// lookupFunc finds a registered function, or says what is registered.
func lookupFunc(name string) (*funcEntry, error) {
	registry.RLock()
	defer registry.RUnlock()
	if e, ok := registry.funcs[name]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("function %q is not registered (registered: %s)", name, someNames(registry.funcs))
}

// lookupActor finds a registered actor type.
func lookupActor(name string) (*actorEntry, error) {
	registry.RLock()
	defer registry.RUnlock()
	if e, ok := registry.actors[name]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("actor type %q is not registered (registered: %s)", name, someNames(registry.actors))
}

// lookupMethod finds a method of a registered actor type.
func lookupMethod(e *actorEntry, name string) (*methodEntry, error) {
	registry.RLock()
	defer registry.RUnlock()
	if m, ok := e.methods[name]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("actor type %q has no method %q (methods: %s)", e.name, name, someNames(e.methods))
}

// someNames lists up to 16 keys of m, sorted, for messages.
func someNames[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, fmt.Sprintf("%q", k))
	}
	slices.Sort(names)
	if len(names) > 16 {
		return strings.Join(names[:16], ", ") + fmt.Sprintf(" and %d more", len(names)-16)
	}
	return strings.Join(names, ", ")
}
