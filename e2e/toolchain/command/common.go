package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"sync"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Logging selects which output streams are echoed to the Pulumi log.
type Logging string

const (
	LogStdout          Logging = "stdout"
	LogStderr          Logging = "stderr"
	LogStdoutAndStderr Logging = "stdoutAndStderr"
	LogNone            Logging = "none"
)

func (Logging) Values() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: "Stdout", Value: LogStdout, Description: "Capture stdout in logs but not stderr"},
		{Name: "Stderr", Value: LogStderr, Description: "Capture stderr in logs but not stdout"},
		{Name: "StdoutAndStderr", Value: LogStdoutAndStderr, Description: "Capture stdout and stderr in logs"},
		{Name: "None", Value: LogNone, Description: "Capture no logs"},
	}
}

func logsStdout(l *Logging) bool { return l == nil || *l == LogStdout || *l == LogStdoutAndStderr }
func logsStderr(l *Logging) bool { return l == nil || *l == LogStderr || *l == LogStdoutAndStderr }

// BaseInputs are the inputs shared by local and remote commands.
type BaseInputs struct {
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Triggers               *[]any            `pulumi:"triggers,optional" provider:"replaceOnChanges"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Logging                *Logging          `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

func (b *BaseInputs) Annotate(a infer.Annotator) {
	a.Describe(&b.Create, "The command to run on create.")
	a.Describe(&b.Update, "The command to run on update, if empty, create will run again.")
	a.Describe(&b.Delete, "The command to run on delete. PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR hold the last outputs.")
	a.Describe(&b.Triggers, "Trigger replacements on changes to this input.")
	a.SetDefault(&b.AddPreviousOutputInEnv, true)
}

// BaseOutputs are the captured outputs of the last run.
type BaseOutputs struct {
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

func addPrevious(b BaseInputs) bool {
	return b.AddPreviousOutputInEnv == nil || *b.AddPreviousOutputInEnv
}

func previousEnv(b BaseInputs, prev BaseOutputs) map[string]string {
	if !addPrevious(b) {
		return nil
	}
	return map[string]string{"PULUMI_COMMAND_STDOUT": prev.Stdout, "PULUMI_COMMAND_STDERR": prev.Stderr}
}

func uniqueID(name string) string {
	id, err := resource.NewUniqueHex(name, 8, 0)
	if err != nil {
		return name
	}
	return id
}

// logWriter echoes complete lines to the Pulumi log while keeping a copy.
type logWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	pw  *io.PipeWriter
	wg  sync.WaitGroup
}

func newLogWriter(ctx context.Context, echo bool) *logWriter {
	w := &logWriter{}
	if !echo {
		return w
	}
	pr, pw := io.Pipe()
	w.pw = pw
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		s := bufio.NewScanner(pr)
		s.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for s.Scan() {
			p.GetLogger(ctx).InfoStatus(s.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return w
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(b)
	w.mu.Unlock()
	if w.pw != nil {
		_, _ = w.pw.Write(b)
	}
	return len(b), nil
}

// String stops echoing and returns the output without its final newline.
func (w *logWriter) String() string {
	if w.pw != nil {
		_ = w.pw.Close()
		w.wg.Wait()
		w.pw = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSuffix(w.buf.String(), "\n")
}
