package pipeline

import (
	"cmp"
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dsql"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/state/api"
)

// Dial returns the SDK's dsql client for the control plane of the daemon
// that the configuration file at path describes (see clientOptions), and
// the configuration, nil without a path.
func Dial(ctx context.Context, path string, o api.ClientOptions) (*dsql.Client, *config.Config, error) {
	cfg, o, err := clientOptions(path, o, false)
	if err != nil {
		return nil, nil, err
	}
	c, err := api.NewClient(ctx, o, config.LoadAWS)
	return c, cfg, err
}

// Health checks the health endpoint of the daemon that the configuration
// file at path describes, preferring metrics_listen, which needs no
// credentials (see api.Health and clientOptions).
func Health(ctx context.Context, path string, o api.ClientOptions, ready bool) (string, error) {
	_, o, err := clientOptions(path, o, true)
	if err != nil {
		return "", err
	}
	return api.Health(ctx, o, ready)
}

// clientOptions is how a command on this host reaches a daemon: o as
// given, with what o leaves out taken from the configuration file at path
// (listen, https with [api] TLS, api.token_file) or, without a file, the
// default listen address. probe prefers metrics_listen. An endpoint
// without a scheme is plain HTTP.
func clientOptions(path string, o api.ClientOptions, probe bool) (*config.Config, api.ClientOptions, error) {
	if o.Endpoint != "" && !strings.Contains(o.Endpoint, "://") {
		o.Endpoint = "http://" + o.Endpoint
	}
	o.Region = cmp.Or(o.Region, "us-east-1")
	if path == "" {
		o.Endpoint = cmp.Or(o.Endpoint, "http://"+config.DefaultListen)
		return nil, o, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, o, err
	}
	url := cfg.ControlPlaneURL()
	if probe {
		url = cfg.ProbeURL()
	}
	// The token goes only where the configuration says it is asked for:
	// not to metrics_listen, nor to an endpoint given by hand.
	if o.Endpoint == "" && url == cfg.ControlPlaneURL() {
		o.TokenFile = cmp.Or(o.TokenFile, cfg.API.TokenFile)
	}
	o.Endpoint, o.Region = cmp.Or(o.Endpoint, url), cfg.AWS.Region
	return cfg, o, nil
}
