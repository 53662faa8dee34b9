package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	_ "modernc.org/sqlite" // registers "sqlite"
)

// cryptoUser is a Matrix user with its own end-to-end encryption, as
// Element is: an Olm device whose keys live in an SQLite database (the
// pure-Go driver the hub uses), and a sync loop that decrypts what
// arrives.
type cryptoUser struct {
	cli    *mautrix.Client
	helper *cryptohelper.CryptoHelper

	mu         sync.Mutex
	notices    map[id.RoomID][]string // decrypted m.notice bodies, oldest first
	plain      []string               // unencrypted messages from the watched sender
	decryptErr []string
}

// newCryptoUser registers name on hs, sets up its crypto and starts its
// sync loop; it reports what from sends in its rooms.
func newCryptoUser(t *testing.T, ctx context.Context, hs, name string, from id.UserID) *cryptoUser {
	t.Helper()
	cli, err := mautrix.NewClient(hs, "", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "correct horse battery " + name,
		InitialDeviceDisplayName: name + "'s Element"})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if resp.DeviceID == "" {
		t.Fatalf("register %s: the homeserver gave no device ID", name)
	}
	cli.SetCredentials(resp.UserID, resp.AccessToken)
	cli.DeviceID = resp.DeviceID

	uri := "file:" + filepath.Join(t.TempDir(), "crypto.db") +
		"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	db, err := dbutil.NewWithDialect(uri, "sqlite")
	if err != nil {
		t.Fatalf("crypto database: %v", err)
	}
	helper, err := cryptohelper.NewCryptoHelper(cli, []byte("pickle key of "+name), db)
	if err != nil {
		db.Close()
		t.Fatalf("crypto helper: %v", err)
	}
	t.Cleanup(func() { helper.Close() })
	u := &cryptoUser{cli: cli, helper: helper, notices: map[id.RoomID][]string{}}
	helper.DecryptErrorCallback = func(evt *event.Event, err error) {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.decryptErr = append(u.decryptErr, fmt.Sprintf("%s from %s: %v", evt.ID, evt.Sender, err))
	}
	if err := helper.Init(ctx); err != nil {
		t.Fatalf("crypto helper init: %v", err)
	}
	cli.Crypto = helper

	syncer := cli.Syncer.(mautrix.ExtensibleSyncer)
	syncer.OnEventType(event.EventMessage, func(ctx context.Context, evt *event.Event) {
		if evt.Sender != from {
			return
		}
		c := evt.Content.AsMessage()
		u.mu.Lock()
		defer u.mu.Unlock()
		if !evt.Mautrix.WasEncrypted {
			u.plain = append(u.plain, fmt.Sprintf("%s %s: %q", evt.ID, c.MsgType, c.Body))
			return
		}
		if c.MsgType == event.MsgNotice {
			u.notices[evt.RoomID] = append(u.notices[evt.RoomID], c.Body)
		}
	})

	syncCtx, stopSync := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for syncCtx.Err() == nil {
			if err := cli.SyncWithContext(syncCtx); err != nil && syncCtx.Err() == nil {
				t.Logf("%s's sync: %v (retrying)", name, err)
				select {
				case <-syncCtx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
	// Registered after helper.Close, so it runs before: the sync loop ends
	// before its database closes.
	t.Cleanup(func() { stopSync(); <-done })
	return u
}

// state is the failure context: what could not be decrypted, what came
// in the clear.
func (u *cryptoUser) state() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return fmt.Sprintf("decryption errors: %q; unencrypted messages from the bot: %q", u.decryptErr, u.plain)
}

// noticesIn returns the decrypted notices received so far in room.
func (u *cryptoUser) noticesIn(room id.RoomID) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.notices[room]...)
}

// command sends body to room encrypted and returns the bot's first new
// decrypted notice that contains want.
func (u *cryptoUser) command(t *testing.T, ctx context.Context, room id.RoomID, body, want string) string {
	t.Helper()
	before := len(u.noticesIn(room))
	resp, err := u.cli.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: body})
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	// The homeserver must hold only the ciphertext.
	if sent, err := u.cli.GetEvent(ctx, room, resp.EventID); err != nil {
		t.Fatalf("get the sent event %s: %v", resp.EventID, err)
	} else if sent.Type != event.EventEncrypted {
		t.Fatalf("%q was sent as %s, not encrypted", body, sent.Type.Type)
	}
	var got string
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	for got == "" {
		if len(u.plainMsgs()) > 0 {
			t.Fatalf("the bot answered %q in the clear in an encrypted room: %s", body, u.state())
		}
		for _, n := range u.noticesIn(room)[before:] {
			if strings.Contains(n, want) {
				got = n
				break
			}
		}
		if got != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the bot gave no decryptable reply to %q containing %q within 45 s; decrypted notices: %q; %s",
				body, want, u.noticesIn(room)[before:], u.state())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if plain := u.plainMsgs(); len(plain) > 0 {
		t.Fatalf("the bot answered %q in the clear in an encrypted room: %q", body, plain)
	}
	return got
}

// plainMsgs returns the bot's unencrypted messages received so far.
func (u *cryptoUser) plainMsgs() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.plain...)
}

// TestBridgeEncryptedDM talks to the bot as Element does: in a direct
// chat that is end-to-end encrypted from its creation. The bot must
// decrypt the commands and answer encrypted.
func TestBridgeEncryptedDM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newBridgeEnv(t)
	admin := newCryptoUser(t, ctx, e.hs, "admin", e.bot)

	resp, err := admin.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{e.bot},
		InitialState: []*event.Event{{
			Type:     event.StateEncryption,
			StateKey: new(""),
			Content:  event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	waitFor(t, ctx, "the bot to join the encrypted DM "+room.String(), func() bool {
		return admin.cli.StateStore.IsInRoom(ctx, room, e.bot)
	})
	if enc, err := admin.cli.StateStore.IsEncrypted(ctx, room); err != nil || !enc {
		t.Fatalf("the DM is not known as encrypted: %v %v", enc, err)
	}

	help := admin.command(t, ctx, room, "help", "devices")
	for _, want := range []string{"lock", "grant", "pair"} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not mention %q:\n%s", want, help)
		}
	}
	admin.command(t, ctx, room, "devices", "may not use any device yet")
}
