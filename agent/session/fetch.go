package session

import (
	"context"
	"errors"
	"fmt"
	"io"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// InstallFunc stores a fetched plugin: version is the exact version the
// request resolved to, and the bytes read from r must hash to sha256hex
// (the installer checks, and refuses a mismatch).
type InstallFunc func(version, sha256hex string, r io.Reader) error

// FetchPlugin downloads a plugin binary from a controller and hands it to
// install while it arrives. It asks the controller it is connected to
// first, then the others: a controller that does not hold the file says
// so, and another may. Each try has its own connection, because the
// stream's connections belong to Run's goroutine.
func (s *Session) FetchPlugin(ctx context.Context, name, version, os, arch string, install InstallFunc) error {
	addrs := s.cfg.Controllers
	if cur := s.Status().Address; cur != "" {
		addrs = dedupe(append([]string{cur}, addrs...))
	}
	var errs []error
	for _, addr := range addrs {
		err := s.fetchFrom(ctx, addr, &agentv1.FetchPluginRequest{Name: name, Version: version, Os: os, Arch: arch}, install)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		s.log.Warn("plugin fetch failed", "controller", addr, "plugin", name+"@"+version, "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return fmt.Errorf("fetch plugin %s@%s: %w", name, version, errors.Join(errs...))
}

func (s *Session) fetchFrom(ctx context.Context, addr string, req *agentv1.FetchPluginRequest, install InstallFunc) error {
	cc, err := s.cfg.Dial(addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agentv1.NewAgentServiceClient(cc).FetchPlugin(ctx, req)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.GetSha256() == "" || first.GetVersion() == "" {
		return errors.New("the controller's first message names no checksum or version")
	}
	pr, pw := io.Pipe()
	go func() {
		chunk := first
		for {
			if _, err := pw.Write(chunk.GetData()); err != nil {
				return // the installer gave up; it reports why
			}
			var err error
			chunk, err = stream.Recv()
			if errors.Is(err, io.EOF) {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(fmt.Errorf("receive plugin: %w", err))
				return
			}
		}
	}()
	err = install(first.GetVersion(), first.GetSha256(), io.LimitReader(pr, int64(first.GetSize())+1))
	// Unblock the receiver if install stopped early.
	pr.CloseWithError(errors.New("install finished"))
	cancel()
	return err
}
