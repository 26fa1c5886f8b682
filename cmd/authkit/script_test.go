package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rogpeppe/go-internal/txtar"
)

// TestScripts runs the scripts in testdata/script (testscript's format, as
// the go command and gopls test their command lines) against the command
// built by TestMain, each in a home of its own. Besides testscript's
// commands they have:
//
//	dev             start `authkit dev --write-config` for the rest of the
//	                script and set ISSUER to its issuer
//	exits N cmd...  exec cmd, which must exit with code N
//	config FILE     make FILE, with $VARIABLES expanded, the user's
//	                config.toml (mode 0600)
//	session FILE    run the transcript FILE (see cmdSession)
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		Setup:               setupScript,
		RequireExplicitExec: true,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"dev":     cmdDev,
			"exits":   cmdExits,
			"config":  cmdConfig,
			"session": cmdSession,
		},
	})
}

// scriptEnv names the variables a transcript's commands see, besides the
// ones it exports.
var scriptEnv = []string{"HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PATH", "AUTHKIT_PROFILE", "TMPDIR"}

func setupScript(env *testscript.Env) error {
	home := filepath.Join(env.WorkDir, "home")
	env.Setenv("HOME", home)
	env.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	env.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
	env.Setenv("PATH", filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return os.MkdirAll(home, 0o700)
}

// cmdDev starts the development provider as the README does and waits for
// its profile to be written.
func cmdDev(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: dev")
	}
	out := startBackground(ts, []string{"authkit", "dev", "--write-config"}, environ(ts, nil))
	first, err := out.next(30 * time.Second)
	ts.Check(err)
	m := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+) `).FindStringSubmatch(first)
	if m == nil {
		ts.Fatalf("authkit dev printed %q, want its issuer", first)
	}
	ts.Setenv("ISSUER", m[1])
	for {
		line, err := out.next(30 * time.Second)
		ts.Check(err)
		if strings.HasPrefix(line, "Then:") {
			return
		}
	}
}

// cmdExits runs a command as exec does and checks its exit code.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE cmd [args...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

// cmdConfig writes the user's config file from an archive file.
func cmdConfig(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: config FILE")
	}
	path := filepath.Join(ts.Getenv("XDG_CONFIG_HOME"), "authkit", "config.toml")
	ts.Check(os.MkdirAll(filepath.Dir(path), 0o700))
	ts.Check(os.WriteFile(path, []byte(os.Expand(ts.ReadFile(args[0]), ts.Getenv)), 0o600))
}

// cmdSession runs a transcript, as a person types it and reads the answers.
// A line "$ cmd args" runs cmd (no shell) with its stdout and stderr on one
// pipe, as a terminal interleaves them; the lines up to the next "$ " line
// (trailing blank lines aside) are what it must print, one for one.
// In them a run of digits stands for any number, "ABCD-EFGH" for any user
// code and "…" for anything: ports, times and tokens differ from run to
// run. "$ cmd &" runs cmd in the background until the script ends, once
// it printed its lines; "$ cmd; echo "exit $?"" prints the exit code (any
// other command must exit 0); "$ export K=V" sets a variable.
func cmdSession(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: session FILE")
	}
	steps, err := parseSession(ts.ReadFile(args[0]))
	ts.Check(err)
	exported := map[string]string{}
	var started []*background
	for _, st := range steps {
		switch {
		case strings.HasPrefix(st.cmd, "export "):
			k, v, _ := strings.Cut(strings.TrimPrefix(st.cmd, "export "), "=")
			exported[k] = v
			ts.Setenv(k, v)
		case st.background:
			out := startBackground(ts, strings.Fields(st.cmd), environ(ts, exported))
			started = append(started, out)
			for i, want := range st.want {
				got, err := out.next(30 * time.Second)
				if err != nil {
					ts.Fatalf("$ %s: line %d: %v; want %q", st.cmd, i+1, err, want)
				}
				if !linePattern(want).MatchString(got) {
					ts.Fatalf("$ %s: line %d is\n\t%q\nwant\n\t%q", st.cmd, i+1, got, want)
				}
			}
		default:
			got, code := runForeground(ts, st.cmd, environ(ts, exported))
			if st.echoExit {
				got = append(got, fmt.Sprintf("exit %d", code))
			} else if code != 0 {
				ts.Fatalf("$ %s: exit %d\n%s", st.cmd, code, strings.Join(got, "\n"))
			}
			if err := matchLines(got, st.want); err != nil {
				ts.Fatalf("$ %s: %v", st.cmd, err)
			}
		}
	}
	for _, b := range started {
		if err := b.interrupt(); err != nil {
			ts.Fatalf("after Ctrl-C: %v", err)
		}
	}
}

// step is one command of a transcript.
type step struct {
	cmd        string
	background bool
	echoExit   bool
	want       []string
}

const echoExit = `; echo "exit $?"`

func parseSession(text string) ([]step, error) {
	var steps []step
	for i, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if c, ok := strings.CutPrefix(line, "$ "); ok {
			st := step{cmd: c}
			if c, ok := strings.CutSuffix(st.cmd, " &"); ok {
				st.cmd, st.background = c, true
			}
			if c, ok := strings.CutSuffix(st.cmd, echoExit); ok {
				st.cmd, st.echoExit = c, true
			}
			if strings.ContainsAny(st.cmd, `'"|;&<>$`) {
				return nil, fmt.Errorf("line %d: %q needs a shell; transcripts run commands without one", i+1, line)
			}
			steps = append(steps, st)
			continue
		}
		if len(steps) == 0 {
			return nil, fmt.Errorf("line %d: output before the first command", i+1)
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
	}
	for i := range steps {
		steps[i].want = trimBlank(steps[i].want)
	}
	return steps, nil
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// variable is what changes from one run to the next in a transcript line.
var variable = regexp.MustCompile(`…|[A-Z]{4}-[A-Z]{4}|\d+`)

// linePattern returns the pattern of a transcript line: see cmdSession.
func linePattern(want string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, m := range variable.FindAllStringIndex(want, -1) {
		b.WriteString(regexp.QuoteMeta(want[last:m[0]]))
		switch v := want[m[0]:m[1]]; {
		case v == "…":
			b.WriteString(".*")
		case v[0] >= 'A' && v[0] <= 'Z':
			b.WriteString("[A-Z]{4}-[A-Z]{4}")
		default:
			b.WriteString(`\d+`)
		}
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(want[last:]))
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func matchLines(got, want []string) error {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Errorf("printed %d lines, want %d; missing\n\t%q\nall of it:\n%s", len(got), len(want), want[i], strings.Join(got, "\n"))
		case i >= len(want):
			return fmt.Errorf("printed %d lines, want %d; extra\n\t%q\nall of it:\n%s", len(got), len(want), got[i], strings.Join(got, "\n"))
		case !linePattern(want[i]).MatchString(got[i]):
			return fmt.Errorf("line %d is\n\t%q\nwant\n\t%q\nall of it:\n%s", i+1, got[i], want[i], strings.Join(got, "\n"))
		}
	}
	return nil
}

// environ is the environment of a transcript's command.
func environ(ts *testscript.TestScript, exported map[string]string) []string {
	var env []string
	for _, k := range scriptEnv {
		if _, ok := exported[k]; !ok && ts.Getenv(k) != "" {
			env = append(env, k+"="+ts.Getenv(k))
		}
	}
	for k, v := range exported {
		env = append(env, k+"="+v)
	}
	return env
}

func lookPath(ts *testscript.TestScript, name string) string {
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	ts.Fatalf("%s: not in PATH", name)
	return ""
}

func runForeground(ts *testscript.TestScript, line string, env []string) (lines []string, code int) {
	args := strings.Fields(line)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lookPath(ts, args[0]), args[1:]...)
	cmd.Env, cmd.Dir = env, ts.Getenv("WORK")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		code = ee.ExitCode()
	default:
		ts.Fatalf("$ %s: %v\n%s", line, err, out.String())
	}
	return trimBlank(strings.Split(strings.TrimRight(out.String(), "\n"), "\n")), code
}

// background is a command left running, and its output.
type background struct {
	lines chan string
	stop  func() error // interrupts the command, once, and waits for it
}

// interrupt sends the command an interrupt, as Ctrl-C does, and returns
// an error unless it then exits 0.
func (b *background) interrupt() error { return b.stop() }

// next returns the command's next line.
func (b *background) next(within time.Duration) (string, error) {
	select {
	case line, ok := <-b.lines:
		if !ok {
			return "", io.EOF
		}
		return line, nil
	case <-time.After(within):
		return "", fmt.Errorf("nothing printed within %s", within)
	}
}

// startBackground starts args until the script ends (then it gets an
// interrupt, as Ctrl-C sends, and must exit 0).
func startBackground(ts *testscript.TestScript, args []string, env []string) *background {
	cmd := exec.Command(lookPath(ts, args[0]), args[1:]...)
	cmd.Env, cmd.Dir = env, ts.Getenv("WORK")
	r, w, err := os.Pipe()
	ts.Check(err)
	cmd.Stdout, cmd.Stderr = w, w
	ts.Check(cmd.Start())
	w.Close()
	// Lines nobody reads (a command that goes on printing after the lines
	// a script waits for) are dropped once 1024 are buffered.
	b := &background{lines: make(chan string, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(b.lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			select {
			case b.lines <- sc.Text():
			default:
			}
		}
	}()
	var (
		once    sync.Once
		stopErr error
	)
	b.stop = func() error {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGINT)
			if stopErr = cmd.Wait(); stopErr != nil {
				stopErr = fmt.Errorf("%s: %w", strings.Join(args, " "), stopErr)
			}
			<-done
			r.Close()
		})
		return stopErr
	}
	ts.Defer(func() {
		if err := b.stop(); err != nil {
			ts.Logf("%v", err)
		}
	})
	return b
}

// TestREADMESessionIsTheScript: the README's sample session is, byte for
// byte, the transcript that testdata/script/readme.txtar runs.
func TestREADMESessionIsTheScript(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- cmd/authkit/testdata/script/readme.txtar -->\n```\n"
	_, rest, ok := strings.Cut(string(readme), marker)
	if !ok {
		t.Fatalf("README.md has no %q", marker)
	}
	inREADME, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatal("README.md: the session's fence is not closed")
	}
	ar, err := txtar.ParseFile(filepath.Join("testdata", "script", "readme.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ar.Files {
		if f.Name == "session" {
			if got := strings.TrimRight(string(f.Data), "\n"); got != inREADME {
				t.Errorf("README.md's session differs from readme.txtar's:\n--- README.md\n%s\n--- readme.txtar\n%s", inREADME, got)
			}
			return
		}
	}
	t.Fatal("readme.txtar has no file \"session\"")
}
