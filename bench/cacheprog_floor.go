// The floor of GOCACHEPROG on this machine: one get's round trip with nothing behind it.
//
// The asking side is shaped as cmd/go's client (cmd/go/internal/cache/prog.go in the
// toolchain): each request JSON-encoded through a buffered writer flushed at once, the
// answers decoded by a reader goroutine and handed on a channel to the goroutine that
// waits for them. The answering side (this program again, with -answer) says "miss" to
// every get as soon as it has read it. A no-op build pays one such round trip per get,
// however fast a helper is. Prints one JSON line: round trips and their time in µs.
//
//	go run bench/cacheprog_floor.go [-n 2000] [-wrap 'taskset -c 1']
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

type request struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
}

type response struct {
	ID            int64
	Miss          bool     `json:",omitempty"`
	KnownCommands []string `json:",omitempty"`
}

func answer() {
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.Encode(response{KnownCommands: []string{"get", "close"}})
	out.Flush()
	for {
		var r request
		if dec.Decode(&r) != nil || r.Command == "close" {
			return
		}
		enc.Encode(response{ID: r.ID, Miss: true})
		out.Flush()
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cacheprog_floor:", err)
	os.Exit(1)
}

func main() {
	n := flag.Int("n", 2000, "round trips to time")
	answering := flag.Bool("answer", false, "be the answering side")
	wrap := flag.String("wrap", "", "start the answering side through this command, e.g. 'taskset -c 1'")
	flag.Parse()
	if *answering {
		answer()
		return
	}
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	argv := append(strings.Fields(*wrap), self, "-answer")
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		fail(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fail(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fail(err)
	}

	var mu sync.Mutex
	inFlight := map[int64]chan *response{}
	ready := make(chan struct{})
	go func() { // cmd/go's readLoop
		dec := json.NewDecoder(stdout)
		for first := true; ; first = false {
			res := new(response)
			if err := dec.Decode(res); err != nil {
				return
			}
			if first {
				close(ready)
				continue
			}
			mu.Lock()
			ch := inFlight[res.ID]
			delete(inFlight, res.ID)
			mu.Unlock()
			ch <- res
		}
	}()
	<-ready

	bw := bufio.NewWriter(stdin)
	enc := json.NewEncoder(bw)
	action := make([]byte, 32)
	took := make([]time.Duration, 0, *n)
	for i := int64(1); i <= int64(*n); i++ {
		ch := make(chan *response, 1)
		binary.LittleEndian.PutUint64(action, uint64(i))
		start := time.Now()
		mu.Lock()
		inFlight[i] = ch
		enc.Encode(request{ID: i, Command: "get", ActionID: action})
		err := bw.Flush()
		mu.Unlock()
		if err != nil {
			fail(err)
		}
		<-ch
		took = append(took, time.Since(start))
	}
	enc.Encode(request{ID: int64(*n) + 1, Command: "close"})
	bw.Flush()
	stdin.Close()
	cmd.Wait()

	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	sort.Slice(took, func(a, b int) bool { return took[a] < took[b] })
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"round_trips": len(took),
		"mean_us":     us(sum / time.Duration(len(took))),
		"median_us":   us(took[len(took)/2]),
		"p90_us":      us(took[len(took)*9/10]),
	})
}
