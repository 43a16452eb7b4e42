package memstore_test

import (
	"context"
	"errors"
	"fmt"

	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

func Example() {
	ctx := context.Background()
	ns := memstore.New()
	b := ns.Bucket("pipeline")

	v, err := b.WriteIf(ctx, "step/lease", []byte("worker-1"), store.IfAbsent())
	fmt.Println("worker-1 acquires:", err)
	_, err = b.WriteIf(ctx, "step/lease", []byte("worker-2"), store.IfAbsent())
	fmt.Println("worker-2 acquires:", errors.Is(err, store.ErrPrecondition))
	_, err = b.WriteIf(ctx, "step/lease", []byte("worker-1, renewed"), store.IfVersion(v))
	fmt.Println("worker-1 renews:", err)
	// Output:
	// worker-1 acquires: <nil>
	// worker-2 acquires: true
	// worker-1 renews: <nil>
}

func ExampleNamespace_SetFaults() {
	ctx := context.Background()
	ns := memstore.New()
	ns.SetFaults(memstore.Faults{FailConditional: 1})

	// A bucket retries transient errors: the first attempt fails, the retry
	// succeeds.
	_, err := ns.Bucket("").WriteIf(ctx, "a", []byte("x"), store.IfAbsent())
	fmt.Println(err)
	// Without retries, the injected failure reaches the caller.
	ns.SetFaults(memstore.Faults{FailConditional: 1})
	b := ns.Bucket("").WithOptions(&store.Options{Retry: store.RetryPolicy{MaxAttempts: 1}})
	_, err = b.WriteIf(ctx, "b", []byte("x"), store.IfAbsent())
	fmt.Println(errors.Is(err, store.ErrTransient))
	// Output:
	// <nil>
	// true
}
