package adbdevice

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
)

// errExit ends an interactive shell (the exit builtin).
type errExit int

func (e errExit) Error() string { return "exit " + strconv.Itoa(int(e)) }

// runLine runs a command line and returns the exit status of its last
// command, as sh -c does.
func (d *Device) runLine(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) int {
	code, _ := d.runList(ctx, line, stdin, stdout, stderr)
	return code
}

// runList runs a command line; err is an errExit when the line ran exit.
func (d *Device) runList(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	cmds, err := SplitCommandLine(line)
	if err != nil {
		fmt.Fprintf(stderr, "/system/bin/sh: syntax error: %v\n", err)
		return 2, nil
	}
	code := 0
	skip := false
	for _, c := range cmds {
		if !skip {
			code = d.runCommand(ctx, c.Words, stdin, stdout, stderr)
			var ex errExit
			if code < 0 {
				ex = errExit(-code - 1)
				return int(ex), ex
			}
		}
		switch c.Op {
		case opAnd:
			skip = code != 0
		case opOr:
			skip = code == 0
		default:
			skip = false
		}
		if ctx.Err() != nil {
			return 130, nil
		}
	}
	return code, nil
}

// interactive runs the lines read from stdin one by one until EOF or exit,
// as a shell without a command does (without prompt and echo, even for a
// pty). It returns the last status.
func (d *Device) interactive(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) int {
	br := bufio.NewReader(stdin)
	code := 0
	for {
		line, err := br.ReadString('\n')
		if strings.TrimSpace(line) != "" {
			var ex errExit
			code, ex = d.runListInteractive(ctx, line, br, stdout, stderr)
			if ex >= 0 {
				return int(ex)
			}
		}
		if err != nil || ctx.Err() != nil {
			return code
		}
	}
}

func (d *Device) runListInteractive(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) (int, errExit) {
	code, err := d.runList(ctx, strings.TrimRight(line, "\r\n"), stdin, stdout, stderr)
	var ex errExit
	if errors.As(err, &ex) {
		return code, ex
	}
	return code, -1
}

// runCommand runs one simple command and returns its status, or -1-n for
// "exit n".
func (d *Device) runCommand(ctx context.Context, words []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var env []string
	for len(words) > 0 && isAssignment(words[0]) {
		env, words = append(env, words[0]), words[1:]
	}
	if len(words) == 0 {
		return 0
	}
	name, args := words[0], words[1:]
	d.mu.Lock()
	f := d.commands[name]
	d.mu.Unlock()
	if f != nil {
		return f(ctx, env, words, stdin, stdout, stderr)
	}
	switch path.Base(name) {
	case "true", ":":
		return 0
	case "false":
		return 1
	case "exit":
		n := 0
		if len(args) > 0 {
			n, _ = strconv.Atoi(args[0])
		}
		return -1 - (n & 0xff)
	case "echo":
		nl := true
		if len(args) > 0 && args[0] == "-n" {
			nl, args = false, args[1:]
		}
		s := strings.Join(args, " ")
		if nl {
			s += "\n"
		}
		_, _ = io.WriteString(stdout, s)
		return 0
	case "sleep":
		if len(args) != 1 {
			fmt.Fprintln(stderr, "usage: sleep DURATION")
			return 1
		}
		sec, err := strconv.ParseFloat(args[0], 64)
		if err != nil || sec < 0 {
			fmt.Fprintf(stderr, "sleep: invalid number '%s'\n", args[0])
			return 1
		}
		select {
		case <-ctx.Done():
			return 130
		case <-time.After(time.Duration(sec * float64(time.Second))):
			return 0
		}
	case "getprop":
		return d.getprop(args, stdout)
	case "wm":
		return d.wm(args, stdout, stderr)
	case "input":
		return d.input(ctx, args, stdout, stderr)
	case "screenrecord":
		return d.screenrecord(ctx, args, stdout, stderr)
	case "cmd":
		return d.cmd(ctx, args, stdin, stdout, stderr)
	case "screencap":
		return d.screencap(args, stdout, stderr)
	case "dumpsys":
		return d.dumpsys(args, stdout, stderr)
	case "cat":
		code := 0
		for _, p := range args {
			f, ok := d.file(p)
			if !ok {
				fmt.Fprintf(stderr, "cat: %s: No such file or directory\n", p)
				code = 1
				continue
			}
			_, _ = stdout.Write(f.Data)
		}
		return code
	case "rm":
		code := 0
		for _, p := range args {
			if strings.HasPrefix(p, "-") {
				continue
			}
			d.mu.Lock()
			_, ok := d.files[p]
			delete(d.files, p)
			d.mu.Unlock()
			if !ok && !strings.Contains(strings.Join(args, " "), "-f") {
				fmt.Fprintf(stderr, "rm: %s: No such file or directory\n", p)
				code = 1
			}
		}
		return code
	case "ls":
		return d.ls(args, stdout, stderr)
	case "id":
		_, _ = io.WriteString(stdout, "uid=2000(shell) gid=2000(shell) groups=2000(shell) context=u:r:shell:s0\n")
		return 0
	case "whoami":
		_, _ = io.WriteString(stdout, "shell\n")
		return 0
	}
	fmt.Fprintf(stderr, "/system/bin/sh: %s: inaccessible or not found\n", name)
	return 127
}

func isAssignment(w string) bool {
	i := strings.IndexByte(w, '=')
	if i <= 0 {
		return false
	}
	for j, c := range w[:i] {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || j > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (d *Device) getprop(args []string, stdout io.Writer) int {
	props := d.Props()
	if len(args) > 0 {
		v, ok := props[args[0]]
		if !ok && len(args) > 1 {
			v = args[1]
		}
		fmt.Fprintln(stdout, v)
		return 0
	}
	for _, k := range sortedKeys(props) {
		fmt.Fprintf(stdout, "[%s]: [%s]\n", k, props[k])
	}
	return 0
}

func (d *Device) wm(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: wm [size|density] ...")
		return 1
	}
	switch args[0] {
	case "size":
		if len(args) > 1 {
			return 0 // overrides are accepted and ignored
		}
		w, h := d.displaySize()
		fmt.Fprintf(stdout, "Physical size: %dx%d\n", w, h)
		return 0
	case "density":
		if len(args) > 1 {
			return 0
		}
		fmt.Fprintln(stdout, "Physical density: 320")
		return 0
	}
	fmt.Fprintf(stderr, "Error: unknown command '%s'\n", args[0])
	return 1
}

// inputArgs are the argument counts input's commands take (min, max; -1 =
// unbounded).
var inputArgs = map[string][2]int{
	"tap":            {2, 2},
	"swipe":          {4, 5},
	"draganddrop":    {4, 5},
	"keyevent":       {1, -1},
	"text":           {1, -1},
	"press":          {0, 0},
	"roll":           {2, 2},
	"motionevent":    {1, -1},
	"keycombination": {2, -1},
	"scroll":         {0, -1},
}

// scrollAxes are the axis names `input scroll --axis` takes for a scroll.
var scrollAxes = map[string]bool{"SCROLL": true, "HSCROLL": true, "VSCROLL": true}

var inputSources = map[string]bool{
	"keyboard": true, "mouse": true, "joystick": true, "touchnavigation": true, "touchpad": true,
	"trackball": true, "stylus": true, "dpad": true, "gesture": true, "touchscreen": true, "gamepad": true,
	"rotaryencoder": true,
}

// pointerSources are the sources of SOURCE_CLASS_POINTER: `input scroll`
// reads X and Y first for them.
var pointerSources = map[string]bool{"touchscreen": true, "mouse": true, "stylus": true}

// input records a well-formed input command as its words after "input"
// joined by spaces, and rejects a malformed one as the real input does
// (usage on stderr, status 1).
func (d *Device) input(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func(why string) int {
		fmt.Fprintf(stderr, "Error: %s\nUsage: input [<source>] [-d DISPLAY_ID] <command> [<arg>...]\n", why)
		return 1
	}
	rest := args
	source := ""
	if len(rest) > 0 && inputSources[rest[0]] {
		source, rest = rest[0], rest[1:]
	}
	if len(rest) >= 2 && rest[0] == "-d" {
		rest = rest[2:]
	}
	if len(rest) == 0 {
		return usage("no command")
	}
	cmd, cargs := rest[0], rest[1:]
	if cmd == "keyevent" && len(cargs) > 0 && (cargs[0] == "--longpress" || cargs[0] == "--doubletap") {
		cargs = cargs[1:]
	}
	n, ok := inputArgs[cmd]
	if !ok || cmd == "scroll" && d.opts.SDK < 33 {
		return usage("Unknown command: " + cmd)
	}
	if len(cargs) < n[0] || n[1] >= 0 && len(cargs) > n[1] {
		return usage("Invalid arguments for command: " + cmd)
	}
	switch cmd {
	case "tap", "swipe", "draganddrop", "roll":
		for _, a := range cargs {
			if _, err := strconv.ParseFloat(a, 32); err != nil {
				return usage("Invalid arguments for command: " + cmd)
			}
		}
	case "scroll":
		// Android 13+ (InputShellCommand.runScroll): X and Y for a pointer
		// source (mouse, stylus, touchscreen; the default source is the
		// rotary encoder, which takes none), then options until the first
		// word that is not one: --axis SCROLL|HSCROLL|VSCROLL,VALUE.
		pos := cargs
		if pointerSources[source] {
			if len(pos) < 2 {
				return usage("Argument expected after \"scroll\"")
			}
			for _, a := range pos[:2] {
				if _, err := strconv.ParseFloat(a, 32); err != nil {
					return usage("Invalid arguments for command: scroll")
				}
			}
			pos = pos[2:]
		}
		for len(pos) > 0 && strings.HasPrefix(pos[0], "-") {
			if pos[0] != "--axis" {
				return usage("Unsupported option: " + pos[0])
			}
			if len(pos) < 2 {
				return usage("Argument expected after \"--axis\"")
			}
			axis, v, ok := strings.Cut(pos[1], ",")
			if !ok || strings.Contains(v, ",") {
				return usage("Invalid --axis option value: " + pos[1])
			}
			if !scrollAxes[axis] {
				return usage("Unsupported axis: AXIS_" + axis)
			}
			if _, err := strconv.ParseFloat(v, 32); err != nil {
				return usage("Invalid arguments for command: scroll")
			}
			pos = pos[2:]
		}
	case "motionevent":
		// runMotionEvent: DOWN, MOVE and UP need X and Y; CANCEL takes
		// them or not. Words past them are never read.
		coords := cargs[1:]
		switch strings.ToUpper(cargs[0]) {
		case "DOWN", "UP", "MOVE":
			if len(coords) < 2 {
				return usage("Argument expected after \"" + cargs[0] + "\"")
			}
		case "CANCEL":
			if len(coords) < 2 {
				coords = nil
			}
		default:
			return usage("Unknown action: " + cargs[0])
		}
		if len(coords) >= 2 {
			for _, a := range coords[:2] {
				if _, err := strconv.ParseFloat(a, 32); err != nil {
					return usage("Invalid arguments for command: motionevent")
				}
			}
		}
	}
	if d.opts.InputDelay > 0 {
		select {
		case <-ctx.Done():
			return 130
		case <-time.After(d.opts.InputDelay):
		}
	}
	d.recordInput(strings.Join(args, " "))
	return 0
}

func (d *Device) ls(args []string, stdout, stderr io.Writer) int {
	var dirs []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			dirs = append(dirs, a)
		}
	}
	if len(dirs) == 0 {
		dirs = []string{"/"}
	}
	code := 0
	files := d.Files()
	for _, dir := range dirs {
		if _, ok := files[dir]; ok {
			fmt.Fprintln(stdout, dir)
			continue
		}
		prefix := strings.TrimSuffix(dir, "/") + "/"
		found := false
		for _, p := range sortedKeys(files) {
			if rel, ok := strings.CutPrefix(p, prefix); ok && !strings.Contains(rel, "/") {
				fmt.Fprintln(stdout, rel)
				found = true
			}
		}
		if !found && !isDir(dir) {
			fmt.Fprintf(stderr, "ls: %s: No such file or directory\n", dir)
			code = 1
		}
	}
	return code
}

// isDir reports whether p is one of the directories the emulated file
// system always has.
func isDir(p string) bool {
	switch strings.TrimSuffix(p, "/") {
	case "", "/data", "/data/local", "/data/local/tmp", "/sdcard", "/storage", "/storage/emulated",
		"/storage/emulated/0", "/system", "/system/bin", "/tmp", "/mnt":
		return true
	}
	return false
}
