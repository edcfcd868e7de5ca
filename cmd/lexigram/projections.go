package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
)

// projectionsCommand lists and drives a running node's projections
// through its HTTP API: they run inside the node.
func projectionsCommand() *cobra.Command {
	var configPath, apiURL, token string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "List a running node's projections; rebuild, pause or resume one (through the node's HTTP API)",
		Long: `Projections run inside the node, so these commands ask the node's HTTP API
(--url, default http://<http.addr> of the configuration) with its bearer
token (--token, default http.token or $LEXIGRAM_HTTP_TOKEN).`,
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.PersistentFlags().StringVar(&apiURL, "url", "", "the node's HTTP address (default http://<http.addr>)")
	cmd.PersistentFlags().StringVar(&token, "token", "", "the node's bearer token (default http.token, $LEXIGRAM_HTTP_TOKEN)")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON as the API answers it")
	client := func() (*apiClient, error) { return newAPIClient(configPath, apiURL, token) }

	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "Every projection: state, position, lag, rate",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			var out struct {
				Projections []projectionStatus `json:"projections"`
			}
			raw, err := c.do(cmd.Context(), http.MethodGet, "/api/projections", &out)
			if err != nil || asJSON {
				return printRaw(cmd.OutOrStdout(), raw, err)
			}
			printProjections(cmd.OutOrStdout(), out.Projections)
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status NAME",
		Short: "One projection's status, with its last rebuild",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			var p projectionStatus
			raw, err := c.do(cmd.Context(), http.MethodGet, "/api/projections/"+url.PathEscape(args[0]), &p)
			if err != nil || asJSON {
				return printRaw(cmd.OutOrStdout(), raw, err)
			}
			printProjections(cmd.OutOrStdout(), []projectionStatus{p})
			if r := p.Rebuild; r != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "rebuild of generation %d: %s\n", r.Generation, r.describe())
			}
			return nil
		},
	}
	var wait bool
	action := func(name, short string) *cobra.Command {
		return &cobra.Command{
			Use:   name + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client()
				if err != nil {
					return err
				}
				path := "/api/projections/" + url.PathEscape(args[0])
				var p projectionStatus
				raw, err := c.do(cmd.Context(), http.MethodPost, path+"/"+name, &p)
				if err != nil {
					return err
				}
				if name != "rebuild" || !wait {
					if asJSON {
						return printRaw(cmd.OutOrStdout(), raw, nil)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, %s\n", p.Name, name+map[bool]string{true: " started", false: "d"}[name == "rebuild"], p.State)
					return nil
				}
				return waitRebuild(cmd.Context(), c, path, p, cmd.ErrOrStderr(), cmd.OutOrStdout())
			},
		}
	}
	rebuild := action("rebuild", "Replay the whole store into a new generation while the current one serves; --wait shows progress until it is live")
	rebuild.Flags().BoolVar(&wait, "wait", false, "wait for the rebuild to finish, with progress")
	cmd.AddCommand(ls, status, rebuild,
		action("pause", "Stop applying events (after the batch in hand, checkpoint saved, lease released)"),
		action("resume", "Apply events again from the checkpoint"))
	return refuseUnknown(cmd)
}

// projectionStatus is what GET /api/projections/{name} answers.
type projectionStatus struct {
	Name            string   `json:"name"`
	State           string   `json:"state"`
	Error           string   `json:"error"`
	Active          bool     `json:"active"`
	Generation      uint64   `json:"generation"`
	Position        uint64   `json:"position"`
	Head            uint64   `json:"head"`
	Lag             uint64   `json:"lag"`
	EventsPerSecond float64  `json:"events_per_second"`
	Rebuild         *rebuild `json:"rebuild"`
}

type rebuild struct {
	Generation      uint64
	Done, Total     uint64
	EventsPerSecond float64
	Remaining       time.Duration
	Finished        time.Time
}

func (r *rebuild) describe() string {
	switch {
	case !r.Finished.IsZero():
		return fmt.Sprintf("finished %s, %d events", r.Finished.Format(time.RFC3339), r.Done)
	case r.Total > 0:
		return fmt.Sprintf("%d/%d events (%.0f%%, %.0f/s, about %s left)", r.Done, r.Total, 100*float64(r.Done)/float64(r.Total), r.EventsPerSecond, r.Remaining.Round(time.Second))
	}
	return fmt.Sprintf("%d events (%.0f/s)", r.Done, r.EventsPerSecond)
}

func printProjections(out io.Writer, ps []projectionStatus) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tACTIVE\tGENERATION\tPOSITION\tLAG\tEVENTS/S\tERROR")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%d\t%.0f\t%s\n", p.Name, p.State, p.Active, p.Generation, p.Position, p.Lag, p.EventsPerSecond, p.Error)
	}
	tw.Flush()
}

// waitRebuild polls the status until the rebuild started as generation
// started.Rebuild has finished, printing progress lines.
func waitRebuild(ctx context.Context, c *apiClient, path string, started projectionStatus, progress, out io.Writer) error {
	want := uint64(0)
	if started.Rebuild != nil {
		want = started.Rebuild.Generation
	}
	last := time.Time{}
	for {
		var p projectionStatus
		if _, err := c.do(ctx, http.MethodGet, path, &p); err != nil {
			return err
		}
		if r := p.Rebuild; r != nil && r.Generation >= want {
			if !r.Finished.IsZero() {
				fmt.Fprintf(out, "%s: generation %d is live: %s\n", p.Name, r.Generation, r.describe())
				return nil
			}
			if time.Since(last) >= time.Second {
				fmt.Fprintf(progress, "rebuilding %s: %s\n", p.Name, r.describe())
				last = time.Now()
			}
		}
		if p.State == "FAULTED" {
			return fmt.Errorf("projection %s faulted during its rebuild: %s", p.Name, p.Error)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// apiClient calls a node's HTTP API.
type apiClient struct {
	base, token string
	http        *http.Client
}

func newAPIClient(configPath, apiURL, token string) (*apiClient, error) {
	if configPath == "" {
		configPath = os.Getenv(config.ConfigFileEnv)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	if apiURL == "" {
		host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
		if err != nil {
			return nil, fmt.Errorf("http.addr %q: %w: pass --url", cfg.HTTP.Addr, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		apiURL = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: use the node's HTTP address, e.g. http://127.0.0.1:8080", apiURL)
	}
	if token == "" {
		token = cfg.HTTP.Token
	}
	return &apiClient{base: strings.TrimRight(apiURL, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends a request and decodes a 2xx answer into out; a problem answer
// becomes an error with its detail and fix. It returns the body.
func (c *apiClient) do(ctx context.Context, method, path string, out any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return nil, fmt.Errorf("the node's HTTP API at %s does not answer (%v): is the node running? pass --url with its http.addr", c.base, op.Err)
		}
		return nil, fmt.Errorf("the node's HTTP API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var p struct{ Title, Detail, Fix, Code string }
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			msg := p.Detail
			if p.Code != "" && !strings.HasPrefix(msg, p.Code) {
				msg = p.Code + ": " + msg
			}
			if p.Fix != "" {
				msg += ": " + p.Fix
			}
			return nil, errors.New(msg)
		}
		return nil, fmt.Errorf("%s %s: %s %s", method, c.base+path, resp.Status, strings.TrimSpace(string(body)))
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, fmt.Errorf("%s %s: the answer is not what this lexigram understands (%v): is --url a lexigram node of the same version?", method, c.base+path, err)
		}
	}
	return body, nil
}

func printRaw(out io.Writer, raw []byte, err error) error {
	if err != nil {
		return err
	}
	_, err = out.Write(raw)
	return err
}
