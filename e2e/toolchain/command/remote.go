package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/pulumi/pulumi-go-provider/infer"
)

// ProxyConnection describes a bastion host.
type ProxyConnection struct {
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional" provider:"secret"`
	Host               string   `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	PrivateKey         *string  `pulumi:"privateKey,optional" provider:"secret"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

func (c *ProxyConnection) Annotate(a infer.Annotator) {
	a.SetDefault(&c.User, "root")
	a.SetDefault(&c.Port, 22)
	a.SetDefault(&c.DialErrorLimit, 10)
	a.SetDefault(&c.PerDialTimeout, 15)
}

// Connection describes how to reach the remote host over SSH.
type Connection struct {
	ProxyConnection
	Proxy *ProxyConnection `pulumi:"proxy,optional"`
}

// RemoteCommand is command:remote:Command.
type RemoteCommand struct{}

// RemoteInputs are the inputs of command:remote:Command.
type RemoteInputs struct {
	BaseInputs
	Connection *Connection `pulumi:"connection" provider:"secret"`
}

// RemoteOutputs are the state of command:remote:Command.
type RemoteOutputs struct {
	RemoteInputs
	BaseOutputs
}

func (c *RemoteCommand) Annotate(a infer.Annotator) {
	a.SetToken("remote", "Command")
	a.Describe(c, "A command to run on a remote host over SSH.")
}

func (c *RemoteCommand) Create(ctx context.Context, req infer.CreateRequest[RemoteInputs]) (infer.CreateResponse[RemoteOutputs], error) {
	state := RemoteOutputs{RemoteInputs: req.Inputs}
	id := uniqueID(req.Name)
	if req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[RemoteOutputs]{ID: id, Output: state}, nil
	}
	out, err := runRemote(ctx, *req.Inputs.Create, req.Inputs, nil)
	state.BaseOutputs = out
	return infer.CreateResponse[RemoteOutputs]{ID: id, Output: state}, err
}

func (c *RemoteCommand) Update(ctx context.Context, req infer.UpdateRequest[RemoteInputs, RemoteOutputs]) (infer.UpdateResponse[RemoteOutputs], error) {
	state := RemoteOutputs{RemoteInputs: req.Inputs, BaseOutputs: req.State.BaseOutputs}
	if req.DryRun {
		return infer.UpdateResponse[RemoteOutputs]{Output: state}, nil
	}
	cmd := req.Inputs.Update
	if cmd == nil {
		cmd = req.Inputs.Create
	}
	if cmd == nil {
		return infer.UpdateResponse[RemoteOutputs]{Output: state}, nil
	}
	out, err := runRemote(ctx, *cmd, req.Inputs, previousEnv(req.Inputs.BaseInputs, req.State.BaseOutputs))
	state.BaseOutputs = out
	return infer.UpdateResponse[RemoteOutputs]{Output: state}, err
}

func (c *RemoteCommand) Delete(ctx context.Context, req infer.DeleteRequest[RemoteOutputs]) (infer.DeleteResponse, error) {
	if req.State.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	_, err := runRemote(ctx, *req.State.Delete, req.State.RemoteInputs, previousEnv(req.State.BaseInputs, req.State.BaseOutputs))
	return infer.DeleteResponse{}, err
}

func str(p *string, def string) string {
	if p == nil || *p == "" {
		return def
	}
	return *p
}

func num(p *int, def int) int {
	if p == nil || *p <= 0 {
		return def
	}
	return *p
}

func (c ProxyConnection) clientConfig() (*ssh.ClientConfig, error) {
	cfg := &ssh.ClientConfig{
		User:            str(c.User, "root"),
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), //nolint:gosec // same default as the upstream provider
		Timeout:         time.Duration(num(c.PerDialTimeout, 15)) * time.Second,
	}
	if c.HostKey != nil && *c.HostKey != "" {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.HostKey))
		if err != nil {
			return nil, fmt.Errorf("parsing hostKey: %w", err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(key)
	}
	if c.PrivateKey != nil && *c.PrivateKey != "" {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil && *c.PrivateKeyPassword != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		if err != nil {
			return nil, fmt.Errorf("parsing privateKey: %w", err)
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil && *c.Password != "" {
		pw := *c.Password
		cfg.Auth = append(cfg.Auth, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
				answers := make([]string, len(qs))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	sock := str(c.AgentSocketPath, os.Getenv("SSH_AUTH_SOCK"))
	if sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		}
	}
	return cfg, nil
}

func (c ProxyConnection) address() string {
	port := 22
	if c.Port != nil && *c.Port > 0 {
		port = int(*c.Port)
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

// dial connects with retries, optionally through a proxy (bastion) client.
func (c ProxyConnection) dial(ctx context.Context, via *ssh.Client) (*ssh.Client, error) {
	cfg, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	limit := num(c.DialErrorLimit, 10)
	var lastErr error
	for attempt := 1; attempt <= limit; attempt++ {
		var client *ssh.Client
		if via == nil {
			client, lastErr = ssh.Dial("tcp", c.address(), cfg)
		} else {
			var conn net.Conn
			if conn, lastErr = via.Dial("tcp", c.address()); lastErr == nil {
				var cc ssh.Conn
				var chans <-chan ssh.NewChannel
				var reqs <-chan *ssh.Request
				if cc, chans, reqs, lastErr = ssh.NewClientConn(conn, c.address(), cfg); lastErr == nil {
					client = ssh.NewClient(cc, chans, reqs)
				}
			}
		}
		if lastErr == nil {
			return client, nil
		}
		if attempt < limit {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
	}
	return nil, fmt.Errorf("unable to connect to %s after %d attempts: %w", c.address(), limit, lastErr)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

func runRemote(ctx context.Context, command string, in RemoteInputs, extraEnv map[string]string) (BaseOutputs, error) {
	if in.Connection == nil {
		return BaseOutputs{}, fmt.Errorf("connection is required")
	}
	var via *ssh.Client
	if in.Connection.Proxy != nil {
		var err error
		if via, err = in.Connection.Proxy.dial(ctx, nil); err != nil {
			return BaseOutputs{}, fmt.Errorf("proxy: %w", err)
		}
		defer via.Close()
	}
	client, err := in.Connection.ProxyConnection.dial(ctx, via)
	if err != nil {
		return BaseOutputs{}, err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return BaseOutputs{}, err
	}
	defer session.Close()

	env := map[string]string{}
	for k, v := range in.Environment {
		env[k] = v
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// sshd drops variables not listed in AcceptEnv; export those in the command instead.
	var prefix strings.Builder
	for _, k := range keys {
		if session.Setenv(k, env[k]) != nil {
			prefix.WriteString("export " + k + "=" + shellQuote(env[k]) + "; ")
		}
	}
	if in.Stdin != nil {
		session.Stdin = strings.NewReader(*in.Stdin)
	}
	stdout := newLogWriter(ctx, logsStdout(in.Logging))
	stderr := newLogWriter(ctx, logsStderr(in.Logging))
	session.Stdout, session.Stderr = stdout, stderr
	err = session.Run(prefix.String() + command)
	out := BaseOutputs{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		return out, fmt.Errorf("%w: running %q:\nStdout:\n%s\nStderr:\n%s", err, command, out.Stdout, out.Stderr)
	}
	return out, nil
}
