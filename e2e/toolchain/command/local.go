package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pulumi/pulumi-go-provider/infer"
)

// LocalCommand is command:local:Command.
type LocalCommand struct{}

// LocalInputs are the inputs of command:local:Command.
type LocalInputs struct {
	BaseInputs
	Dir          *string   `pulumi:"dir,optional"`
	Interpreter  *[]string `pulumi:"interpreter,optional"`
	AssetPaths   *[]string `pulumi:"assetPaths,optional"`
	ArchivePaths *[]string `pulumi:"archivePaths,optional"`
}

// LocalOutputs are the state of command:local:Command.
type LocalOutputs struct {
	LocalInputs
	BaseOutputs
}

func (c *LocalCommand) Annotate(a infer.Annotator) {
	a.SetToken("local", "Command")
	a.Describe(c, "A local command to be executed. This command can be inserted into the life cycles of other resources.")
}

func (c *LocalCommand) Create(ctx context.Context, req infer.CreateRequest[LocalInputs]) (infer.CreateResponse[LocalOutputs], error) {
	state := LocalOutputs{LocalInputs: req.Inputs}
	id := uniqueID(req.Name)
	if req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[LocalOutputs]{ID: id, Output: state}, nil
	}
	out, err := runLocal(ctx, *req.Inputs.Create, req.Inputs, nil)
	state.BaseOutputs = out
	return infer.CreateResponse[LocalOutputs]{ID: id, Output: state}, err
}

func (c *LocalCommand) Update(ctx context.Context, req infer.UpdateRequest[LocalInputs, LocalOutputs]) (infer.UpdateResponse[LocalOutputs], error) {
	state := LocalOutputs{LocalInputs: req.Inputs, BaseOutputs: req.State.BaseOutputs}
	if req.DryRun {
		return infer.UpdateResponse[LocalOutputs]{Output: state}, nil
	}
	cmd := req.Inputs.Update
	if cmd == nil {
		cmd = req.Inputs.Create
	}
	if cmd == nil {
		return infer.UpdateResponse[LocalOutputs]{Output: state}, nil
	}
	out, err := runLocal(ctx, *cmd, req.Inputs, previousEnv(req.Inputs.BaseInputs, req.State.BaseOutputs))
	state.BaseOutputs = out
	return infer.UpdateResponse[LocalOutputs]{Output: state}, err
}

func (c *LocalCommand) Delete(ctx context.Context, req infer.DeleteRequest[LocalOutputs]) (infer.DeleteResponse, error) {
	if req.State.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	_, err := runLocal(ctx, *req.State.Delete, req.State.LocalInputs, previousEnv(req.State.BaseInputs, req.State.BaseOutputs))
	return infer.DeleteResponse{}, err
}

func runLocal(ctx context.Context, command string, in LocalInputs, extraEnv map[string]string) (BaseOutputs, error) {
	interpreter := []string{"/bin/sh", "-c"}
	if in.Interpreter != nil && len(*in.Interpreter) > 0 {
		interpreter = *in.Interpreter
	}
	args := append(append([]string{}, interpreter[1:]...), command)
	cmd := exec.CommandContext(ctx, interpreter[0], args...)
	if in.Dir != nil {
		cmd.Dir = *in.Dir
	}
	cmd.Env = os.Environ()
	for k, v := range in.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range extraEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if in.Stdin != nil {
		cmd.Stdin = strings.NewReader(*in.Stdin)
	}
	stdout := newLogWriter(ctx, logsStdout(in.Logging))
	stderr := newLogWriter(ctx, logsStderr(in.Logging))
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	out := BaseOutputs{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = fmt.Errorf("exit status %d: running %q:\nStdout:\n%s\nStderr:\n%s",
				exit.ExitCode(), command, out.Stdout, out.Stderr)
		}
		return out, err
	}
	return out, nil
}

// Run is the command:local:run function.
type Run struct{}

// RunInputs are the arguments of command:local:run.
type RunInputs struct {
	Command                string            `pulumi:"command"`
	Dir                    *string           `pulumi:"dir,optional"`
	Interpreter            *[]string         `pulumi:"interpreter,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Logging                *Logging          `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
	AssetPaths             *[]string         `pulumi:"assetPaths,optional"`
	ArchivePaths           *[]string         `pulumi:"archivePaths,optional"`
}

// RunOutputs are the results of command:local:run.
type RunOutputs struct {
	RunInputs
	BaseOutputs
}

func (r *Run) Annotate(a infer.Annotator) {
	a.SetToken("local", "run")
	a.Describe(r, "A local command to be executed as a function.")
}

func (r *Run) Invoke(ctx context.Context, req infer.FunctionRequest[RunInputs]) (infer.FunctionResponse[RunOutputs], error) {
	in := req.Input
	out, err := runLocal(ctx, in.Command, LocalInputs{
		BaseInputs: BaseInputs{Environment: in.Environment, Stdin: in.Stdin, Logging: in.Logging},
		Dir:        in.Dir, Interpreter: in.Interpreter,
	}, nil)
	return infer.FunctionResponse[RunOutputs]{Output: RunOutputs{RunInputs: in, BaseOutputs: out}}, err
}
