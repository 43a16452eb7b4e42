package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"example.com/cairn/store"
)

// writeJSONL writes items to key, one JSON value per line.
func writeJSONL[T any](ctx context.Context, b *store.Bucket, key string, items []T) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
	}
	_, err := b.Write(ctx, key, buf.Bytes())
	return err
}

// readJSONL reads the JSON values, one a line, stored at key.
func readJSONL[T any](ctx context.Context, b *store.Bucket, key string) ([]T, error) {
	data, _, err := b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	var items []T
	lineNo := 0
	for line := range bytes.Lines(data) {
		lineNo++
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var it T
		if err := json.Unmarshal(line, &it); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", b.URL(key), lineNo, err)
		}
		items = append(items, it)
	}
	return items, nil
}

// writeJSON writes v to key as indented JSON.
func writeJSON(ctx context.Context, b *store.Bucket, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = b.Write(ctx, key, append(data, '\n'))
	return err
}
