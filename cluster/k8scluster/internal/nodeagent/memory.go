package nodeagent

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// memoryInterval is how often the containers' resident memory is checked
// against their limits.
const memoryInterval = 50 * time.Millisecond

// memoryMonitor enforces containers' memory limits, as the kubelet's
// cgroups do: a container is a process group, and a group whose resident
// memory exceeds its limit is killed. One goroutine scans /proc once per
// interval for every watched group: with a scan per container, a hundred
// running containers made the agent read /proc tens of thousands of times
// a second and starve the very processes it ran.
type memoryMonitor struct {
	mu     sync.Mutex
	groups map[int]*memoryGroup // by process group id
	wake   chan struct{}        // a group was added
}

type memoryGroup struct {
	limit  int64  // bytes
	onKill func() // called, once, before the group is killed
}

func newMemoryMonitor() *memoryMonitor {
	return &memoryMonitor{groups: map[int]*memoryGroup{}, wake: make(chan struct{}, 1)}
}

// watch starts enforcing limit on process group pgid; onKill is called
// before the group is killed for exceeding it. The returned function stops
// the watch.
func (m *memoryMonitor) watch(pgid int, limit int64, onKill func()) (stop func()) {
	g := &memoryGroup{limit: limit, onKill: onKill}
	m.mu.Lock()
	m.groups[pgid] = g
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return func() {
		m.mu.Lock()
		if m.groups[pgid] == g {
			delete(m.groups, pgid)
		}
		m.mu.Unlock()
	}
}

// run scans until done is closed, sleeping while no group is watched.
func (m *memoryMonitor) run(done <-chan struct{}) {
	t := time.NewTicker(memoryInterval)
	defer t.Stop()
	for {
		m.mu.Lock()
		idle := len(m.groups) == 0
		m.mu.Unlock()
		if idle {
			select {
			case <-done:
				return
			case <-m.wake:
			}
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
		m.check()
	}
}

// check kills every watched group over its limit.
func (m *memoryMonitor) check() {
	rss := groupsRSS()
	m.mu.Lock()
	var over []int
	for pgid, g := range m.groups {
		if rss[pgid] > g.limit {
			over = append(over, pgid)
		}
	}
	killed := make([]*memoryGroup, len(over))
	for i, pgid := range over {
		killed[i] = m.groups[pgid]
		delete(m.groups, pgid)
	}
	m.mu.Unlock()
	for i, pgid := range over {
		killed[i].onKill()
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// groupsRSS returns the resident memory, in bytes, of every process group,
// from one pass over /proc.
func groupsRSS() map[int]int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	page := int64(os.Getpagesize())
	total := map[int]int64{}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ... rss is the 24th field; comm may
		// hold spaces and parentheses.
		s := string(data)
		k := strings.LastIndexByte(s, ')')
		if k < 0 {
			continue
		}
		f := strings.Fields(s[k+1:])
		if len(f) < 22 {
			continue
		}
		pgid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		pages, _ := strconv.ParseInt(f[21], 10, 64)
		total[pgid] += pages * page
	}
	return total
}
