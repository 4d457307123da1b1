package agentrpc

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// Session tickets let an agent resume its TLS session instead of doing a
// full handshake (certificate signature and chain verification on both
// sides) every time it reconnects. After a controller restart all of its
// agents reconnect at once, and full handshakes are what made that slow.
//
// The ticket keys are derived from the agent CA's private key, which every
// controller of the cluster shares and which survives restarts, so a
// ticket issued before a restart or by another controller still resumes.
// They change every ticketEpoch; a ticket sealed with a key older than the
// previous epoch falls back to a full handshake.
const ticketEpoch = 24 * time.Hour

// ticketKeys derives and caches the keys of the current and the previous
// epoch; the first one seals new tickets.
type ticketKeys struct {
	secret []byte

	mu    sync.Mutex
	epoch int64
	keys  [][32]byte
}

func newTicketKeys(caKey []byte) *ticketKeys { return &ticketKeys{secret: caKey} }

func (t *ticketKeys) at(now time.Time) ([][32]byte, error) {
	epoch := now.Unix() / int64(ticketEpoch/time.Second)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keys != nil && t.epoch == epoch {
		return t.keys, nil
	}
	keys := make([][32]byte, 0, 2)
	for _, e := range []int64{epoch, epoch - 1} {
		info := binary.BigEndian.AppendUint64([]byte("opsconductor agent session tickets v1 "), uint64(e))
		k, err := hkdf.Key(sha256.New, t.secret, nil, string(info), 32)
		if err != nil {
			return nil, fmt.Errorf("derive session ticket key: %w", err)
		}
		keys = append(keys, [32]byte(k))
	}
	t.epoch, t.keys = epoch, keys
	return keys, nil
}
