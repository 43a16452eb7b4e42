package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "filestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	b, err := filestore.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	v, err := b.WriteIf(ctx, "step/lease", []byte(`{"worker_id": "a"}`), store.IfAbsent())
	if err != nil {
		log.Fatal(err)
	}
	_, err = b.WriteIf(ctx, "step/lease", []byte(`{"worker_id": "b"}`), store.IfAbsent())
	fmt.Println("second create:", errors.Is(err, store.ErrPrecondition))
	_, err = b.WriteIf(ctx, "step/lease", []byte(`{"worker_id": "a", "renewed": true}`), store.IfVersion(v))
	fmt.Println("renew:", err)
	for key, err := range b.List(ctx, "") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("key:", key)
	}
	// Output:
	// second create: true
	// renew: <nil>
	// key: step/lease
}
