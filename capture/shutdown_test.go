package capture

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestShutdownSignals: which errors of the health watcher's connection end
// the session as a shutdown, and which make it check again at once.
func TestShutdownSignals(t *testing.T) {
	cases := []struct {
		name string
		err  error
		// ends: a health check failing with err ends the session.
		ends bool
		// now: the health watcher checks again at once.
		now bool
	}{
		{"terminated 57P01", &pgconn.PgError{Code: "57P01"}, false, true},
		{"refused while shutting down 57P03", &pgconn.PgError{Code: "57P03"}, true, false},
		{"idle session timeout 57P05", &pgconn.PgError{Code: "57P05"}, false, false},
		{"connection failure 08006", &pgconn.PgError{Code: "08006"}, false, false},
		{"connection lost", fmt.Errorf("%w: eof", errConnLost), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", tc.err)
			src := &Source{}
			ctx, end := context.WithCancelCause(context.Background())
			defer end(nil)
			src.setSessionEnd(end)
			src.endSessionForShutdown(err)
			if got := errors.Is(context.Cause(ctx), errSourceShutdown); got != tc.ends {
				t.Errorf("session ended for a shutdown: %v (cause %v), want %v", got, context.Cause(ctx), tc.ends)
			}

			const interval = 10 * time.Second
			if got := recheck(err, interval) == 0; got != tc.now {
				t.Errorf("checks again at once: %v, want %v", got, tc.now)
			}
		})
	}
}

func TestEndSessionWithoutSession(t *testing.T) {
	src := &Source{}
	src.endSessionForShutdown(&pgconn.PgError{Code: "57P03"}) // no session: nothing to end
	ctx, end := context.WithCancelCause(context.Background())
	src.setSessionEnd(end)
	src.setSessionEnd(nil)
	src.endSessionForShutdown(&pgconn.PgError{Code: "57P03"})
	if ctx.Err() != nil {
		t.Fatal("a session no longer registered was ended")
	}
}
