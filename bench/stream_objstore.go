//go:build objstore

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// streamResult is one JSON line of the streaming benchmark.
type streamResult struct {
	Store     string  `json:"store"`
	Via       string  `json:"via"`       // "cairn" or the SDK's name
	Direction string  `json:"direction"` // "upload" or "download"
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	MBps      float64 `json:"mb_per_s"`
}

// sdkTransfer uploads and downloads one object with the SDK used
// directly: the baseline of the streaming benchmark.
type sdkTransfer interface {
	name() string
	upload(ctx context.Context, key string, r io.Reader) error
	download(ctx context.Context, key string, w io.Writer) (int64, error)
	remove(ctx context.Context, key string) error
}

// runStream measures the throughput of uploading and downloading one
// object of cfg.streamSize bytes through cairn (store.Bucket.NewWriter,
// NewReader) and through the SDK's own transfer API, alternating, on the
// store of cfg.store. The bytes are pseudo-random, generated on the fly by
// the same generator for both.
func runStream(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	var tag [4]byte
	rand.Read(tag[:])
	prefix := "stream-" + hex.EncodeToString(tag[:])
	bucket, err := childStorage().OpenBucket(ctx, cfg.store+"/"+prefix)
	if err != nil {
		return err
	}
	defer bucket.Close()
	u, err := url.Parse(cfg.store)
	if err != nil {
		return err
	}
	keyPrefix := strings.Trim(u.Path, "/") + "/" + prefix + "/"
	var sdk sdkTransfer
	switch u.Scheme {
	case "s3":
		sdk, err = newS3Transfer(ctx, u.Host, keyPrefix)
	case "gs":
		sdk, err = newGCSTransfer(ctx, u.Host, keyPrefix)
	}
	if err != nil {
		return err
	}
	defer func() {
		bucket.Delete(context.WithoutCancel(ctx), "cairn.bin")
		sdk.remove(context.WithoutCancel(ctx), "sdk.bin")
	}()

	n := cfg.streamSize
	var results []streamResult
	record := func(via, dir string, d time.Duration) {
		r := streamResult{Store: u.Scheme, Via: via, Direction: dir, Bytes: n, Seconds: d.Seconds(), MBps: float64(n) / 1e6 / d.Seconds()}
		results = append(results, r)
		fmt.Fprintf(stdout, `{"store":%q,"via":%q,"direction":%q,"bytes":%d,"seconds":%.3f,"mb_per_s":%.1f}`+"\n",
			r.Store, r.Via, r.Direction, r.Bytes, r.Seconds, r.MBps)
	}
	timed := func(f func() error) (time.Duration, error) {
		start := time.Now()
		err := f()
		return time.Since(start), err
	}
	for i := range cfg.repeat {
		d, err := timed(func() error {
			w, err := bucket.NewWriter(ctx, "cairn.bin")
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, pseudoRandom(uint64(i), n)); err != nil {
				w.Abort()
				return err
			}
			return w.Close()
		})
		if err != nil {
			return fmt.Errorf("cairn upload: %w", err)
		}
		record("cairn", "upload", d)
		if d, err = timed(func() error { return sdk.upload(ctx, "sdk.bin", pseudoRandom(uint64(i), n)) }); err != nil {
			return fmt.Errorf("%s upload: %w", sdk.name(), err)
		}
		record(sdk.name(), "upload", d)
		d, err = timed(func() error {
			r, err := bucket.NewReader(ctx, "cairn.bin")
			if err != nil {
				return err
			}
			defer r.Close()
			got, err := io.Copy(io.Discard, r)
			if err == nil && got != n {
				err = fmt.Errorf("read %d bytes, want %d", got, n)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("cairn download: %w", err)
		}
		record("cairn", "download", d)
		d, err = timed(func() error {
			got, err := sdk.download(ctx, "sdk.bin", io.Discard)
			if err == nil && got != n {
				err = fmt.Errorf("read %d bytes, want %d", got, n)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("%s download: %w", sdk.name(), err)
		}
		record(sdk.name(), "download", d)
	}
	printStreamSummary(stderr, results)
	return nil
}

// printStreamSummary prints the median throughput of each way and
// direction, and cairn's as a fraction of the SDK's.
func printStreamSummary(w io.Writer, results []streamResult) {
	med := map[[2]string][]float64{}
	var vias []string
	for _, r := range results {
		k := [2]string{r.Via, r.Direction}
		if len(med[k]) == 0 && r.Direction == "upload" {
			vias = append(vias, r.Via)
		}
		med[k] = append(med[k], r.MBps)
	}
	median := func(xs []float64) float64 {
		s := append([]float64(nil), xs...)
		for i := range s {
			for j := i + 1; j < len(s); j++ {
				if s[j] < s[i] {
					s[i], s[j] = s[j], s[i]
				}
			}
		}
		return s[len(s)/2]
	}
	fmt.Fprintf(w, "\n%-28s %12s %12s\n", "via", "upload MB/s", "download MB/s")
	for _, v := range vias {
		fmt.Fprintf(w, "%-28s %12.1f %12.1f\n", v, median(med[[2]string{v, "upload"}]), median(med[[2]string{v, "download"}]))
	}
	if len(vias) == 2 {
		for _, d := range []string{"upload", "download"} {
			fmt.Fprintf(w, "cairn/%s %s: %.2f\n", vias[1], d, median(med[[2]string{"cairn", d}])/median(med[[2]string{vias[1], d}]))
		}
	}
}

// pseudoRandom returns a reader of n deterministic pseudo-random bytes.
func pseudoRandom(seed uint64, n int64) io.Reader {
	return io.LimitReader(mrand.NewChaCha8([32]byte{byte(seed), 'b', 'e', 'n', 'c', 'h'}), n)
}

// s3Transfer uploads with the AWS SDK's transfer manager
// (feature/s3/transfermanager) with its defaults (8 MiB parts, 5 at once)
// and downloads with the client's GetObject, on a client configured from
// the same environment as s3store's, with checksums only when required, as
// s3store sets them for a custom endpoint.
type s3Transfer struct {
	client *s3.Client
	tm     *transfermanager.Client
	bucket string
	prefix string
}

func newS3Transfer(ctx context.Context, bucket, prefix string) (*s3Transfer, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = o.BaseEndpoint != nil
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.DisableChecksumValidation = true
	})
	return &s3Transfer{client: client, tm: tm, bucket: bucket, prefix: prefix}, nil
}

func (s *s3Transfer) name() string { return "SDK (transfermanager up, GetObject down)" }

func (s *s3Transfer) upload(ctx context.Context, key string, r io.Reader) error {
	_, err := s.tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key), Body: r})
	return err
}

// download is the client's own GetObject, one stream: in our first run
// against versitygw, transfermanager's GetObject (concurrent ranged parts)
// stalled with no progress for minutes after the first ~150 MB.
func (s *s3Transfer) download(ctx context.Context, key string, w io.Writer) (int64, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	return io.Copy(w, out.Body)
}

func (s *s3Transfer) remove(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	return err
}

// gcsTransfer is the GCS client's Writer and Reader, with their defaults
// (16 MiB chunks, the library's retries).
type gcsTransfer struct {
	bkt    *storage.BucketHandle
	prefix string
}

func newGCSTransfer(ctx context.Context, bucket, prefix string) (*gcsTransfer, error) {
	// JSON reads, as gcsstore's client makes them.
	client, err := storage.NewClient(ctx, storage.WithJSONReads())
	if err != nil {
		return nil, err
	}
	return &gcsTransfer{bkt: client.Bucket(bucket), prefix: prefix}, nil
}

func (g *gcsTransfer) name() string { return "storage.Writer/Reader" }

func (g *gcsTransfer) upload(ctx context.Context, key string, r io.Reader) error {
	w := g.bkt.Object(g.prefix + key).NewWriter(ctx)
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func (g *gcsTransfer) download(ctx context.Context, key string, w io.Writer) (int64, error) {
	r, err := g.bkt.Object(g.prefix + key).NewReader(ctx)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return io.Copy(w, r)
}

func (g *gcsTransfer) remove(ctx context.Context, key string) error {
	return g.bkt.Object(g.prefix + key).Delete(ctx)
}
