package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/inspect"
)

// maxInput bounds what the frame tool reads from stdin: a frame in base64
// plus room for whitespace.
const maxInput = 4 * wire.MaxFrameSize

func frameMain(args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "decode":
		err = frameDecode(args[1:], env)
	case "encode":
		err = frameEncode(args[1:], env)
	case "vectors":
		err = frameVectors(args[1:], env)
	default:
		err = fmt.Errorf("unknown subcommand %q (want decode, encode or vectors)", args[0])
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintf(env.Stderr, "frame %s: %v\n", args[0], u.err)
		return 2
	}
	fmt.Fprintf(env.Stderr, "frame %s: %s\n", args[0], oneLine(err))
	return 1
}

type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "myclerk: ")), " ")
}

// keyFlags are the flags that supply key material.
type keyFlags struct {
	keys      string
	direction string
	epoch     uint
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.keys, "keys", "", "key material: a JSON file or inline JSON {session_key, transcript_hash, initiator_key, responder_key} (hex)")
	fs.StringVar(&k.direction, "direction", "i2r", "direction of the frame: i2r (initiator to responder) or r2i")
	fs.UintVar(&k.epoch, "epoch", 0, "the receiver's key epoch: frames of it and of the next open (a Tier 4-5 frame's Key ID says which; PROFILE.md §P16)")
}

func (k *keyFlags) load() (*inspect.KeyMaterial, wire.Direction, error) {
	dir, err := inspect.ParseDirection(k.direction)
	if err != nil {
		return nil, 0, err
	}
	if k.epoch > wire.MaxStartEpoch {
		return nil, 0, fmt.Errorf("epoch %d is over the limit of %d", k.epoch, wire.MaxStartEpoch)
	}
	if k.keys == "" {
		return nil, dir, nil
	}
	src := []byte(k.keys)
	if !strings.HasPrefix(strings.TrimSpace(k.keys), "{") {
		if src, err = os.ReadFile(k.keys); err != nil {
			return nil, 0, fmt.Errorf("key material: %w", err)
		}
	}
	var km inspect.KeyMaterial
	if err := json.Unmarshal(src, &km); err != nil {
		return nil, 0, fmt.Errorf("key material: %w", err)
	}
	if _, err := km.Secrets(); err != nil {
		return nil, 0, err
	}
	return &km, dir, nil
}

// readArg returns the single positional argument, or stdin when there is none.
func readArg(fs *flag.FlagSet, stdin io.Reader) (string, error) {
	switch fs.NArg() {
	case 0:
		b, err := io.ReadAll(io.LimitReader(stdin, maxInput+1))
		if err != nil {
			return "", err
		}
		if len(b) > maxInput {
			return "", wire.ErrTooLarge
		}
		return string(b), nil
	case 1:
		return fs.Arg(0), nil
	}
	return "", usageError{fmt.Errorf("want one argument, got %d", fs.NArg())}
}

// decodeFrameText reads hex (optional 0x, whitespace ignored) or base64
// (standard or URL alphabet, padded or not). With format "auto", text that
// is valid hex is hex.
func decodeFrameText(s, format string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	if s == "" {
		return nil, errors.New("no frame given")
	}
	switch format {
	case "hex":
		return inspect.DecodeHex(s)
	case "auto":
		if b, err := inspect.DecodeHex(s); err == nil {
			return b, nil
		}
	case "base64":
	default:
		return nil, usageError{fmt.Errorf("-in %q: want auto, hex or base64", format)}
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(strings.TrimRight(s, "=")); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("frame is neither hex nor base64")
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Now(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-now %q: want Unix seconds or RFC 3339", s)
	}
	return t, nil
}

func frameDecode(args []string, env Env) error {
	fs := flag.NewFlagSet("frame decode", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var kf keyFlags
	kf.register(fs)
	now := fs.String("now", "", "receiver clock for the timestamp check: Unix seconds or RFC 3339 (default: now)")
	skew := fs.Duration("skew", 0, "peer clock minus ours, as measured at the handshake")
	in := fs.String("in", "auto", "input format: auto, hex or base64")
	largest := fs.Int64("largest", -1, "largest counter already accepted in the epoch (steers counter recovery; -1: none)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: myclerk-bridge frame decode [flags] [FRAME]\n\nFRAME is hex or base64; without it, stdin is read.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	text, err := readArg(fs, env.Stdin)
	if err != nil {
		return err
	}
	b, err := decodeFrameText(text, *in)
	if err != nil {
		return err
	}
	km, dir, err := kf.load()
	if err != nil {
		return err
	}
	t, err := parseTime(*now)
	if err != nil {
		return err
	}
	opts := inspect.Options{Keys: km, Direction: dir, Epoch: uint32(kf.epoch), Now: t, Skew: *skew}
	if *largest >= 0 {
		l := uint64(*largest)
		opts.Largest = &l
	}
	d := inspect.Describe(b, opts)
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	switch {
	case d.Error != "":
		return errors.New(d.Error)
	case d.OpenError != "":
		return errors.New(d.OpenError)
	}
	return nil
}

func frameEncode(args []string, env Env) error {
	fs := flag.NewFlagSet("frame encode", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var kf keyFlags
	kf.register(fs)
	b64 := fs.Bool("base64", false, "print unpadded base64 instead of hex")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: myclerk-bridge frame encode [flags] [JSON]\n\nJSON describes the frame as frame decode prints it (payload = plaintext); without it, stdin is read.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	text, err := readArg(fs, env.Stdin)
	if err != nil {
		return err
	}
	var fr inspect.Frame
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr); err != nil {
		return fmt.Errorf("frame JSON: %w", err)
	}
	km, dir, err := kf.load()
	if err != nil {
		return err
	}
	b, err := inspect.Encode(&fr, inspect.EncodeOptions{Keys: km, Direction: dir, Epoch: uint32(kf.epoch)})
	if err != nil {
		return err
	}
	if *b64 {
		fmt.Fprintln(env.Stdout, base64.RawStdEncoding.EncodeToString(b))
	} else {
		fmt.Fprintf(env.Stdout, "%x\n", b)
	}
	return nil
}

func usageErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}
