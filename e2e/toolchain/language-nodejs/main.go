// Command pulumi-language-nodejs is a small Node.js language host for the
// Pulumi engine, built from the pulumi Go SDK only. It runs a program with the
// @pulumi/pulumi package's own "cmd/run" entry point (the same scaffolding the
// upstream host uses), so TypeScript programs work through ts-node as usual.
//
// It covers what `pulumi preview/up/destroy/refresh` need: GetRequiredPackages
// (reads node_modules/**/package.json "pulumi" sections), Run, GetPluginInfo,
// InstallDependencies (npm install) and About. Code generation, policy packs
// and plugins written in Node.js are not supported.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	pbempty "google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Version is stamped with -ldflags "-X main.Version=X.Y.Z".
var Version = "0.0.0-dev"

// Exit code the Node.js scaffolding uses after it has already reported the error.
const exitAfterReportedError = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	mu            sync.Mutex
	engineAddress string
	tracing       string
}

func main() {
	h := &host{}
	var positional []string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--tracing" || a == "-tracing":
			if i+1 < len(args) {
				h.tracing = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--tracing=") || strings.HasPrefix(a, "-tracing="):
			h.tracing = a[strings.Index(a, "=")+1:]
		case strings.HasPrefix(a, "-"):
			// -v=N, --logtostderr, --logflow, -root=..., runtime options: not needed here.
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) > 0 {
		h.engineAddress = positional[len(positional)-1]
	}

	cancel := make(chan bool)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: could not start the gRPC server: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: %v\n", err)
		os.Exit(1)
	}
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

// pulumiSection is the "pulumi" block of a provider SDK's package.json.
type pulumiSection struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
}

func programDir(info *pulumirpc.ProgramInfo, fallback string) string {
	if d := info.GetProgramDirectory(); d != "" {
		return d
	}
	return fallback
}

func (h *host) GetRequiredPackages(_ context.Context, req *pulumirpc.GetRequiredPackagesRequest) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := findProviderPackages(programDir(req.GetInfo(), "."))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *host) GetRequiredPlugins(_ context.Context, req *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := findProviderPackages(programDir(req.GetInfo(), req.GetPwd()))
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, d := range deps {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server,
		})
	}
	return resp, nil
}

// findProviderPackages walks the nearest node_modules (this directory or a
// parent) and returns each resource plugin that an installed SDK declares.
func findProviderPackages(dir string) ([]*pulumirpc.PackageDependency, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var modules string
	for d := abs; ; d = filepath.Dir(d) {
		if st, err := os.Stat(filepath.Join(d, "node_modules")); err == nil && st.IsDir() {
			modules = filepath.Join(d, "node_modules")
			break
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	found := map[string]*pulumirpc.PackageDependency{}
	if modules != "" {
		err = filepath.WalkDir(modules, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable entries are skipped
			}
			if e.IsDir() && (e.Name() == ".bin" || e.Name() == ".cache") {
				return filepath.SkipDir
			}
			if e.IsDir() || e.Name() != "package.json" {
				return nil
			}
			// Only package roots: <node_modules>/<name>/package.json or <node_modules>/@scope/<name>/package.json.
			rel := filepath.Dir(p)
			parent := filepath.Dir(rel)
			if filepath.Base(parent) != "node_modules" && !(strings.HasPrefix(filepath.Base(parent), "@") &&
				filepath.Base(filepath.Dir(parent)) == "node_modules") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			var pkg struct {
				Name    string        `json:"name"`
				Version string        `json:"version"`
				Pulumi  pulumiSection `json:"pulumi"`
			}
			if json.Unmarshal(data, &pkg) != nil || !pkg.Pulumi.Resource {
				return nil
			}
			name := pkg.Pulumi.Name
			if name == "" {
				name = strings.TrimPrefix(pkg.Name, "@pulumi/")
			}
			version := pkg.Pulumi.Version
			if version == "" {
				version = pkg.Version
			}
			version = strings.TrimPrefix(version, "v")
			key := name + "@" + version
			if _, ok := found[key]; !ok {
				found[key] = &pulumirpc.PackageDependency{
					Name: name, Kind: "resource", Version: "v" + version, Server: pkg.Pulumi.Server,
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(found))
	for k := range found {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*pulumirpc.PackageDependency, 0, len(keys))
	for _, k := range keys {
		out = append(out, found[k])
	}
	return out, nil
}

func option(info *pulumirpc.ProgramInfo, key string) (any, bool) {
	if info.GetOptions() == nil {
		return nil, false
	}
	v, ok := info.GetOptions().AsMap()[key]
	return v, ok
}

// locateRunScript resolves @pulumi/pulumi/cmd/run from the program directory,
// so the program's own copy of the SDK runs it.
func locateRunScript(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "node", "-e", "console.log(require.resolve('@pulumi/pulumi/cmd/run'))")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("could not find @pulumi/pulumi in %s (run 'npm install' there): %w", dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	dir := programDir(info, req.GetPwd())
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = req.GetProgram()
	}
	if entry == "" {
		entry = "."
	}
	runScript, err := locateRunScript(ctx, dir)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	var nodeArgs []string
	if v, ok := option(info, "nodeargs"); ok {
		if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
			nodeArgs = strings.Fields(s)
		}
	}
	typescript := true
	if v, ok := option(info, "typescript"); ok {
		switch b := v.(type) {
		case bool:
			typescript = b
		case string:
			typescript, _ = strconv.ParseBool(b)
		}
	}

	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()

	args := append([]string{}, nodeArgs...)
	args = append(args, runScript, "--monitor="+req.GetMonitorAddress())
	if engine != "" {
		args = append(args, "--engine="+engine)
	}
	for flag, v := range map[string]string{
		"organization": req.GetOrganization(), "project": req.GetProject(), "stack": req.GetStack(),
		"pwd": dir, "root-directory": info.GetRootDirectory(), "tracing": h.tracing,
	} {
		if v != "" {
			args = append(args, "--"+flag+"="+v)
		}
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	if req.GetParallel() > 0 {
		args = append(args, "--parallel="+strconv.Itoa(int(req.GetParallel())))
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secrets),
		"PULUMI_NODEJS_TYPESCRIPT="+strconv.FormatBool(typescript),
	)
	if v, ok := option(info, "tsconfig"); ok {
		if s, ok := v.(string); ok && s != "" {
			env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+s)
		}
	}

	cmd := exec.Command("node", args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if exit.ExitCode() == exitAfterReportedError {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exit.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

type streamWriter struct {
	send   func(*pulumirpc.InstallDependenciesResponse) error
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	b := append([]byte{}, p...)
	msg := &pulumirpc.InstallDependenciesResponse{Stdout: b}
	if w.stderr {
		msg = &pulumirpc.InstallDependenciesResponse{Stderr: b}
	}
	if err := w.send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	dir := programDir(req.GetInfo(), req.GetDirectory())
	args := []string{"install", "--no-audit", "--no-fund"}
	if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err == nil && os.Getenv("CI") != "" {
		args = []string{"ci", "--no-audit", "--no-fund"}
	}
	cmd := exec.CommandContext(server.Context(), "npm", args...)
	cmd.Dir = dir
	cmd.Stdout = streamWriter{send: server.Send}
	cmd.Stderr = streamWriter{send: server.Send, stderr: true}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm %s failed in %s: %w", strings.Join(args, " "), dir, err)
	}
	return nil
}

func (h *host) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("could not find node on PATH")
	}
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: node, Version: strings.TrimSpace(string(out))}, nil
}

func (h *host) GetProgramDependencies(_ context.Context, req *pulumirpc.GetProgramDependenciesRequest) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir := programDir(req.GetInfo(), req.GetPwd())
	f, err := os.Open(filepath.Join(dir, "package.json"))
	if err != nil {
		return &pulumirpc.GetProgramDependenciesResponse{}, nil
	}
	defer f.Close()
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(f, 16<<20))).Decode(&pkg); err != nil {
		return &pulumirpc.GetProgramDependenciesResponse{}, nil
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	names := make([]string, 0, len(pkg.Dependencies))
	for n := range pkg.Dependencies {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: n, Version: pkg.Dependencies[n]})
	}
	return resp, nil
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}
