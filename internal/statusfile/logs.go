package statusfile

import (
	"context"
	"errors"
	"path"
	"slices"
	"strconv"
	"strings"

	"example.com/cairn/store"
)

// Attempt logs. Every attempt at a step writes its log to
// LogsDir/attempt-N.log under the step's output path. N numbers the logs of
// a step from 1 in the order they were started, whoever started them: an
// attempt running the step's function in a runner's process claims the
// next free N (ClaimLog), and so does a runner submitting the step's
// cluster job, whose later attempts (the cluster's retries, the
// scheduler's in-place restarts) take the numbers after it. A takeover is
// a new attempt and gets a new N: no log is ever overwritten by another
// attempt.

// LogKey returns the key, under a step's output path, of attempt n's log.
func LogKey(n int) string { return LogsDir + "/attempt-" + strconv.Itoa(n) + ".log" }

// LogNumber returns the attempt number of a log's key (or base name), and
// false if it does not name an attempt log.
func LogNumber(key string) (int, bool) {
	s, ok := strings.CutPrefix(path.Base(key), "attempt-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".log")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// ListLogs returns the attempt numbers of the logs under b, a step's output
// path, in increasing order.
func ListLogs(ctx context.Context, b *store.Bucket) ([]int, error) {
	var ns []int
	for key, err := range b.List(ctx, LogsDir) {
		if err != nil {
			if errors.Is(err, store.ErrNotExist) {
				break
			}
			return nil, err
		}
		if path.Dir(key) != LogsDir {
			continue
		}
		if n, ok := LogNumber(key); ok {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// claimTries bounds ClaimLog's attempts; each lost race moves on to a
// higher number, so only a storm of runners could exhaust it.
const claimTries = 100

// ClaimLog creates an empty log for the next attempt under b, a step's
// output path written through a bucket that may write control files, and
// returns its number: one more than the highest present. The log is created
// only if absent, so two runners racing for a number never share it: the
// loser takes the next one.
func ClaimLog(ctx context.Context, b *store.Bucket) (int, error) {
	return ClaimLogWith(ctx, b, nil)
}

// ClaimLogWith is ClaimLog creating the log with data.
func ClaimLogWith(ctx context.Context, b *store.Bucket, data []byte) (int, error) {
	// The first attempt, by far the most common, costs one request.
	_, err := b.WriteIf(ctx, LogKey(1), data, store.IfAbsent())
	if err == nil {
		return 1, nil
	}
	if !errors.Is(err, store.ErrPrecondition) {
		return 0, err
	}
	ns, err := ListLogs(ctx, b)
	if err != nil {
		return 0, err
	}
	n := 2
	if len(ns) > 0 {
		n = max(ns[len(ns)-1]+1, 2)
	}
	for range claimTries {
		_, err := b.WriteIf(ctx, LogKey(n), data, store.IfAbsent())
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, store.ErrPrecondition) {
			return 0, err
		}
		n++
	}
	return 0, errors.New("statusfile: no free attempt log number after " + strconv.Itoa(claimTries) + " tries")
}
