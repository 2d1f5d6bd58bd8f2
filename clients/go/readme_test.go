package receiver

import (
	"bufio"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// readmeReceiver is the first Go program in README.md: the complete receiver its first
// screen shows.
func readmeReceiver(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	match := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	if match == nil {
		t.Fatal("README.md has no Go program")
	}
	return string(match[1])
}

func goTool(t *testing.T) string {
	t.Helper()
	if tool := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(tool) {
		return tool
	}
	tool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go tool to build the README's receiver with")
	}
	return tool
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// buildReadmeReceiver builds the README's program as a user would: its own module,
// with a replace directive pointing at this directory.
func buildReadmeReceiver(t *testing.T) string {
	t.Helper()
	source := readmeReceiver(t)
	if formatted, err := format.Source([]byte(source)); err != nil || string(formatted) != source {
		t.Fatalf("the README's receiver is not gofmt-formatted Go: %v", err)
	}
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	goMod := fmt.Sprintf("module example.com/readme\n\ngo 1.19\n\nrequire watchwire/receiver v0.0.0\n\nreplace watchwire/receiver => %s\n", here)
	for name, text := range map[string]string{"go.mod": goMod, "main.go": source} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	binary := filepath.Join(dir, "receiver")
	build := exec.Command(goTool(t), "build", "-o", binary, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's receiver does not build: %v\n%s", err, out)
	}
	return binary
}

// The README's receiver builds, and run against a gateway it receives, checks and
// prints notifications.
func TestTheReadmeReceiverWorks(t *testing.T) {
	binary := buildReadmeReceiver(t)
	gw := startGateway(t)

	app := exec.Command(binary, "-gateway", gw.url, "-listen", "127.0.0.1:0")
	stderr, err := app.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = app.Process.Kill()
		_ = app.Wait()
	})
	lines := make(chan string, 64)
	go func() {
		scanner := bufio.NewScanner(stderr)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
	}()
	var seen []string
	waitFor := func(what string) string {
		t.Helper()
		deadline := time.After(timeout)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("the receiver exited before %s; it said:\n%s", what, strings.Join(seen, "\n"))
				}
				seen = append(seen, line)
				if strings.Contains(line, what) {
					return line
				}
			case <-deadline:
				t.Fatalf("no %q within %v; the receiver said:\n%s", what, timeout, strings.Join(seen, "\n"))
			}
		}
	}
	watching := waitFor("watching /calendars/primary/events as ")
	id := watching[strings.LastIndex(watching, " ")+1:]
	gw.call(t, "POST", "/v1/events", rawJSON(`{"resource": "/calendars/primary/events/ev1", "state": "exists", "data": {"summary": "Lunch"}}`), 200)
	// The sync may be printed before or after the watching line; the event comes after.
	line := waitFor(id + " #2 exists ")
	if !strings.HasSuffix(line, ` {"summary": "Lunch"}`) {
		t.Fatalf("unexpected line %q", line)
	}
	all := strings.Join(seen, "\n")
	if !strings.Contains(all, id+" #1 sync ") {
		t.Fatalf("the sync was not printed:\n%s", all)
	}
}
