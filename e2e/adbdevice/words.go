package adbdevice

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSyntax is wrapped by SplitCommandLine for a line the emulated shell
// cannot parse: an unterminated quote, a trailing escape, an operator it
// does not support.
var ErrSyntax = errors.New("shell syntax error")

// Pipeline operators the emulated shell understands between commands.
const (
	opSeq = ";"
	opAnd = "&&"
	opOr  = "||"
)

// SimpleCommand is one command of a command line: its words after POSIX
// quote removal, and the operator that joins it to the next command (";",
// "&&", "||", or "" for the last one).
type SimpleCommand struct {
	Words []string
	Op    string
}

// SplitWords splits a single command into words the way a POSIX shell does
// (XCU 2.2, 2.3, 2.6.7): blanks separate words; single quotes keep
// everything literally; double quotes keep everything except that a
// backslash escapes $ ` " \ and newline; an unquoted backslash escapes the
// next character and a backslash-newline disappears; an unquoted # at the
// start of a word begins a comment. No expansion is performed. Operators
// (; & | < > ( )) are errors here: use SplitCommandLine for lists. The error
// wraps ErrSyntax.
func SplitWords(s string) ([]string, error) {
	cmds, err := SplitCommandLine(s)
	if err != nil {
		return nil, err
	}
	switch len(cmds) {
	case 0:
		return nil, nil
	case 1:
		if cmds[0].Op == "" {
			return cmds[0].Words, nil
		}
	}
	return nil, fmt.Errorf("split %q: a list where one command was expected: %w", s, ErrSyntax)
}

// SplitCommandLine splits a command line into simple commands joined by
// ";", "&&" or "||" (a trailing ";" is allowed), each split into words as
// SplitWords does. Newlines act as ";". Pipes, redirections, background
// jobs and subshells are not supported and yield an error wrapping
// ErrSyntax. Empty commands between separators are dropped.
func SplitCommandLine(s string) ([]SimpleCommand, error) {
	var (
		cmds  []SimpleCommand
		words []string
		word  strings.Builder
		inW   bool // a word is open, even if empty ("")
	)
	endWord := func() {
		if inW {
			words = append(words, word.String())
			word.Reset()
			inW = false
		}
	}
	endCmd := func(op string) error {
		endWord()
		if len(words) == 0 {
			if op == opAnd || op == opOr {
				return fmt.Errorf("split %q: %s without a command before it: %w", s, op, ErrSyntax)
			}
			return nil
		}
		cmds = append(cmds, SimpleCommand{Words: words, Op: op})
		words = nil
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
		case c == '\n' || c == ';':
			if err := endCmd(opSeq); err != nil {
				return nil, err
			}
		case c == '&' || c == '|':
			if i+1 < len(s) && s[i+1] == c {
				if err := endCmd(string([]byte{c, c})); err != nil {
					return nil, err
				}
				i++
				continue
			}
			return nil, fmt.Errorf("split %q: operator %q not supported: %w", s, c, ErrSyntax)
		case c == '<' || c == '>' || c == '(' || c == ')':
			return nil, fmt.Errorf("split %q: operator %q not supported: %w", s, c, ErrSyntax)
		case c == '#' && !inW:
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i-- // let the newline end the command
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("split %q: trailing backslash: %w", s, ErrSyntax)
			}
			i++
			if s[i] == '\n' {
				continue
			}
			word.WriteByte(s[i])
			inW = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("split %q: unterminated single quote: %w", s, ErrSyntax)
			}
			word.WriteString(s[i+1 : i+1+j])
			inW = true
			i += j + 1
		case c == '"':
			inW = true
			i++
			for ; ; i++ {
				if i >= len(s) {
					return nil, fmt.Errorf("split %q: unterminated double quote: %w", s, ErrSyntax)
				}
				d := s[i]
				if d == '"' {
					break
				}
				if d == '\\' && i+1 < len(s) {
					switch n := s[i+1]; n {
					case '$', '`', '"', '\\':
						word.WriteByte(n)
						i++
						continue
					case '\n':
						i++
						continue
					}
				}
				word.WriteByte(d)
			}
		default:
			word.WriteByte(c)
			inW = true
		}
	}
	if err := endCmd(""); err != nil {
		return nil, err
	}
	if n := len(cmds); n > 0 {
		if op := cmds[n-1].Op; op == opAnd || op == opOr {
			return nil, fmt.Errorf("split %q: %s at the end: %w", s, op, ErrSyntax)
		}
		cmds[n-1].Op = ""
	}
	return cmds, nil
}

// Quote returns words as one command line that SplitWords turns back into
// the same words: each word single-quoted unless it is made only of safe
// characters.
func Quote(words []string) string {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@%") == "" {
			b.WriteString(w)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(w, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}
