package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// errNoAnswer is returned when standard input ends in the middle of a question.
var errNoAnswer = errors.New("aborted: standard input ended before the question was answered")

// prompter asks questions on a terminal, line by line, in the manner of Sentry Relay's
// dialoguer prompts: a default in brackets, Enter takes it, a bad answer is explained and the
// question asked again.
type prompter struct {
	r *bufio.Reader
	w io.Writer
}

func newPrompter(r io.Reader, w io.Writer) *prompter {
	return &prompter{r: bufio.NewReader(r), w: w}
}

func (p *prompter) readLine() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		if errors.Is(err, io.EOF) {
			return "", errNoAnswer
		}
		return "", fmt.Errorf("read answer: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// choose shows numbered items and returns the index picked (def on Enter).
func (p *prompter) choose(question string, items []string, def int) (int, error) {
	fmt.Fprintf(p.w, "? %s\n", question)
	for i, it := range items {
		fmt.Fprintf(p.w, "  %d) %s\n", i+1, it)
	}
	for {
		fmt.Fprintf(p.w, "  choose 1-%d [%d]: ", len(items), def+1)
		ans, err := p.readLine()
		if err != nil {
			return 0, err
		}
		if ans == "" {
			return def, nil
		}
		n, err := strconv.Atoi(ans)
		if err == nil && n >= 1 && n <= len(items) {
			return n - 1, nil
		}
		fmt.Fprintf(p.w, "  invalid input: %q is not a number from 1 to %d\n", ans, len(items))
	}
}

// value asks for a value with a default; check (if not nil) explains a bad answer.
func (p *prompter) value(name, def string, check func(string) error) (string, error) {
	for {
		if def != "" {
			fmt.Fprintf(p.w, "? %s [%s]: ", name, def)
		} else {
			fmt.Fprintf(p.w, "? %s: ", name)
		}
		ans, err := p.readLine()
		if err != nil {
			return "", err
		}
		if ans == "" {
			ans = def
		}
		if ans == "" {
			fmt.Fprintf(p.w, "  invalid input: a value is required\n")
			continue
		}
		if check != nil {
			if err := check(ans); err != nil {
				fmt.Fprintf(p.w, "  invalid input: %v\n", err)
				continue
			}
		}
		return ans, nil
	}
}

// confirm asks a yes/no question.
func (p *prompter) confirm(question string, def bool) (bool, error) {
	hint := "y/N"
	if def {
		hint = "Y/n"
	}
	for {
		fmt.Fprintf(p.w, "? %s [%s]: ", question, hint)
		ans, err := p.readLine()
		if err != nil {
			return false, err
		}
		switch strings.ToLower(ans) {
		case "":
			return def, nil
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
		fmt.Fprintf(p.w, "  invalid input: answer y or n\n")
	}
}
