package k8scluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"example.com/cairn/cluster/driver"
)

// watch is what this process knows of a Job whose pods' output it copies
// into the job's log files: the log directory and attempt number the job
// was submitted (or adopted) with, the open log files and a stream per
// pod.
type watch struct {
	logDir   string
	base     int // the Job's attempt number
	replicas int
	adopted  bool

	// mu guards the fields below.
	mu      sync.Mutex
	files   map[int]*logFile // by attempt number
	streams map[types.UID]*podStream
	err     error // the log could not be opened or written
}

// logFile is one attempt's log, shared by the replicas' streams, which
// write whole lines.
type logFile struct {
	mu   sync.Mutex
	f    *os.File
	size int64 // when opened: what an earlier runner already copied
}

// podStream is the copying of one pod's output.
type podStream struct {
	done chan struct{} // closed when all of it is copied (or the pod is gone)
}

func newWatch(logDir string, base, replicas int, adopted bool) *watch {
	return &watch{logDir: logDir, base: base, replicas: replicas, adopted: adopted,
		files: map[int]*logFile{}, streams: map[types.UID]*podStream{}}
}

// open opens the log of attempt n, unless it is open. It refuses a log
// directory or file that is a symbolic link, or a log that is not a
// regular file: a step's log directory on a shared prefix may be writable
// by others, who must not make this process append to any file of its
// user.
func (w *watch) open(n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.files[n] != nil {
		return nil
	}
	if err := os.MkdirAll(w.logDir, 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	path := filepath.Join(w.logDir, driver.LogName(n))
	fi, err := os.Lstat(w.logDir)
	if err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("refusing to log to %s: the log directory is a symbolic link or not a directory", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return fmt.Errorf("refusing to log to %s: %w", path, err)
	}
	fi, err = f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("refusing to log to %s: not a regular file", path)
	}
	w.files[n] = &logFile{f: f, size: fi.Size()}
	return nil
}

func (w *watch) file(n int) *logFile {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.files[n]
}

func (w *watch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *watch) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// close closes the log files. Streams must have ended.
func (w *watch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for n, f := range w.files {
		f.f.Close()
		delete(w.files, n)
	}
}

// started reports whether any container of p has started.
func started(p *corev1.Pod) bool {
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return true
		}
	}
	return false
}

// stream starts copying the output of every pod that started, and
// reports whether all of it is copied.
func (s *Scheduler) stream(w *watch, pods []*corev1.Pod) (complete bool) {
	complete = true
	for _, p := range pods {
		if !started(p) {
			continue // no output (yet); a pod that ran shows its containers' states
		}
		w.mu.Lock()
		ps := w.streams[p.UID]
		w.mu.Unlock()
		if ps == nil {
			// An in-place restart is a new attempt with its own log.
			n := w.base
			if c, err := strconv.Atoi(p.Annotations[annotationIgnoredFailure]); err == nil && c > 0 {
				n += c
			}
			if err := w.open(n); err != nil {
				w.fail(err)
				return false
			}
			lf := w.file(n)
			var skip int64
			if w.adopted && w.replicas == 1 {
				// The runner that submitted the Job copied this much of
				// the pod's output before it stopped.
				skip = lf.size
			}
			var containers []string
			for _, c := range containerNames(p) {
				// Setup runs in every replica's pod; its output is
				// copied from the first replica's only, as the job's
				// setup is printed once on the other backends.
				// (An element of a pack is one replica: its setup is
				// its own.)
				if w.replicas > 1 && p.Annotations[annotationIndex] != "0" && strings.HasPrefix(c, "setup-") {
					continue
				}
				containers = append(containers, c)
			}
			ps = &podStream{done: make(chan struct{})}
			w.mu.Lock()
			w.streams[p.UID] = ps
			w.mu.Unlock()
			s.mu.Lock()
			closed := s.closed
			if !closed {
				s.wg.Add(1)
			}
			s.mu.Unlock()
			if closed {
				return false
			}
			go func() {
				defer s.wg.Done()
				s.follow(w, p.Name, p.UID, containers, lf, skip, ps)
			}()
		}
		select {
		case <-ps.done:
		default:
			complete = false
		}
	}
	// A pod that is gone from the list (deleted) may still be copied, or
	// its copier still be waiting for the log file's lock: the log is
	// complete only when every copy this watch started has ended.
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ps := range w.streams {
		select {
		case <-ps.done:
		default:
			complete = false
		}
	}
	return complete
}

func containerNames(p *corev1.Pod) []string {
	var names []string
	for _, c := range p.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
	}
	return names
}

// retryDelay spaces out attempts to read a log that is not available yet.
const retryDelay = 100 * time.Millisecond

// follow copies the output of pod name (UID uid), container after
// container, into lf, dropping the first skip bytes, and closes ps.done
// when all of it is copied or the pod is gone. It ends early, leaving
// ps.done open, when the scheduler closes.
func (s *Scheduler) follow(w *watch, name string, uid types.UID, containers []string, lf *logFile, skip int64, ps *podStream) {
	var line []byte // a partial line, written when complete
	write := func(b []byte) {
		line = append(line, b...)
		i := bytes.LastIndexByte(line, '\n')
		if i < 0 {
			return
		}
		lf.mu.Lock()
		_, err := lf.f.Write(line[:i+1])
		lf.mu.Unlock()
		if err != nil {
			w.fail(fmt.Errorf("writing the log: %w", err))
		}
		line = append(line[:0], line[i+1:]...)
	}
	flush := func() {
		if len(line) > 0 {
			lf.mu.Lock()
			_, err := lf.f.Write(line)
			lf.mu.Unlock()
			if err != nil {
				w.fail(fmt.Errorf("writing the log: %w", err))
			}
			line = line[:0]
		}
	}
	sleep := func() bool {
		t := time.NewTimer(retryDelay)
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	defer func() {
		if s.ctx.Err() == nil {
			close(ps.done)
		}
	}()
	// One copier per log file: a runner that adopts the Job while another
	// is still copying its output (a runner that lost the step's lease but
	// lives, or another client) waits for that copy to end, its file closed
	// or its process gone (the kernel drops a dead holder's flock), and
	// then resumes after what it copied, instead of writing every line a
	// second time.
	for {
		lf.mu.Lock()
		err := syscall.Flock(int(lf.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		lf.mu.Unlock()
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			w.fail(fmt.Errorf("locking the log: %w", err))
			return
		}
		if !sleep() {
			return
		}
	}
	if w.adopted && w.replicas == 1 {
		lf.mu.Lock()
		if fi, err := lf.f.Stat(); err == nil {
			skip = fi.Size()
		}
		lf.mu.Unlock()
	}
	buf := make([]byte, 32<<10)
	for _, c := range containers {
		var consumed int64 // bytes of this container's output already copied
		for {
			if s.ctx.Err() != nil {
				return
			}
			p := s.cache.pod(name)
			if p == nil || p.UID != uid {
				got, err := s.client.CoreV1().Pods(s.ns).Get(s.ctx, name, metav1.GetOptions{})
				if err != nil || got.UID != uid {
					flush()
					return // gone: nothing more to copy
				}
				p = got
			}
			state, known := containerState(p, c)
			if known && state.Waiting != nil && p != nil && (p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded) {
				flush()
				return // never started: an earlier container failed
			}
			if !known || state.Waiting != nil {
				if !sleep() {
					return
				}
				continue
			}
			rc, err := s.client.CoreV1().Pods(s.ns).GetLogs(name, &corev1.PodLogOptions{Container: c, Follow: true}).Stream(s.ctx)
			if err != nil {
				if !sleep() {
					return
				}
				continue
			}
			var read int64
			for {
				n, err := rc.Read(buf)
				if n > 0 {
					b := buf[:n]
					// Drop what an earlier connection (or runner) copied.
					if d := min(max(consumed-read, 0), int64(len(b))); d > 0 {
						b = b[d:]
					}
					read += int64(n)
					if k := min(skip, int64(len(b))); k > 0 {
						b, skip = b[k:], skip-k
					}
					if len(b) > 0 {
						write(b)
					}
					consumed = max(consumed, read)
				}
				if err != nil {
					break
				}
			}
			rc.Close()
			// The stream ends when the container does, or when the
			// connection breaks: then read it again.
			if p := s.cache.pod(name); p == nil || p.UID != uid {
				flush()
				return
			} else if st, ok := containerState(p, c); ok && st.Terminated != nil {
				flush()
				break
			}
			if !sleep() {
				return
			}
		}
	}
}

// containerState returns the state of container c of p.
func containerState(p *corev1.Pod, c string) (corev1.ContainerState, bool) {
	if p == nil {
		return corev1.ContainerState{}, false
	}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.Name == c {
			return cs.State, true
		}
	}
	return corev1.ContainerState{}, false
}
