package oauth

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTokenLifecycleProperties drives refresh families through random
// sequences of starts, refreshes, replays of replaced tokens, revocations
// and clock steps, against a model of what must hold after every step:
//   - a live family's current refresh token refreshes, and its newest
//     access token verifies;
//   - a revoked family (revoked by a client, or by the replay of a
//     replaced token after the reuse grace) never yields a token again,
//     through any of its refresh tokens, and none of the access tokens it
//     issued verifies any more;
//   - nothing ever brings a revoked family back.
func TestTokenLifecycleProperties(t *testing.T) {
	type family struct {
		refresh []string // in order of issue; the last is current
		access  []string
		revoked bool
	}
	ctx := context.Background()
	for seed := range uint64(25) {
		e := newRFEnv(t)
		rng := rand.New(rand.NewPCG(seed, 12))
		var fams []*family
		pick := func() *family { return fams[rng.IntN(len(fams))] }
		for step := range 50 {
			switch op := rng.IntN(6); {
			case op == 0 || len(fams) == 0:
				at, rt := e.start(t)
				fams = append(fams, &family{refresh: []string{rt}, access: []string{at.Token}})
			case op <= 2: // refresh with the current token
				f := pick()
				at, next, err := e.rf.Refresh(ctx, rfApp, f.refresh[len(f.refresh)-1], "")
				switch {
				case f.revoked && err == nil:
					t.Fatalf("seed %d step %d: a revoked family yielded a token", seed, step)
				case !f.revoked && err != nil:
					t.Fatalf("seed %d step %d: a live family's current token was refused: %v", seed, step, err)
				case err == nil:
					f.refresh, f.access = append(f.refresh, next), append(f.access, at.Token)
				}
			case op == 3: // replay a replaced token, after the reuse grace
				f := pick()
				if len(f.refresh) < 2 {
					continue
				}
				e.clk.Advance(DefaultRefreshReuseGrace + time.Second)
				old := f.refresh[rng.IntN(len(f.refresh)-1)]
				if _, _, err := e.rf.Refresh(ctx, rfApp, old, ""); err == nil {
					t.Fatalf("seed %d step %d: a replaced refresh token yielded a token", seed, step)
				}
				f.revoked = true // reuse detection revokes the family
			case op == 4: // the client revokes the family through any of its tokens
				f := pick()
				if err := e.rv.Revoke(ctx, rfApp, f.refresh[rng.IntN(len(f.refresh))], "refresh_token"); err != nil {
					t.Fatalf("seed %d step %d: revoke: %v", seed, step, err)
				}
				f.revoked = true
			default:
				e.clk.Advance(time.Duration(rng.IntN(1500)) * time.Millisecond)
			}
			// The invariants, over every family.
			for i, f := range fams {
				if !f.revoked {
					if _, err := e.v.Verify(ctx, f.access[len(f.access)-1]); err != nil {
						t.Fatalf("seed %d step %d: family %d is live, but its newest access token does not verify: %v", seed, step, i, err)
					}
					continue
				}
				for _, rt := range f.refresh {
					if _, _, err := e.rf.Refresh(ctx, rfApp, rt, ""); err == nil {
						t.Fatalf("seed %d step %d: revoked family %d yielded a token", seed, step, i)
					}
				}
				for _, at := range f.access {
					if _, err := e.v.Verify(ctx, at); err == nil {
						t.Fatalf("seed %d step %d: an access token of revoked family %d still verifies", seed, step, i)
					}
				}
			}
		}
	}
}
