package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// redisTimeout bounds one command, dial included: a Redis that is being
// restarted must make a request fail fast, not hang it.
const redisTimeout = 2 * time.Second

// maxBulk caps a bulk reply the app reads (a value it stored itself).
const maxBulk = 1 << 20

// redisClient speaks just enough RESP (Redis's protocol) for GET, SET and
// INCR, one connection per command: the app's demo endpoints are few and
// a fresh connection needs no reconnect logic when Redis restarts.
type redisClient struct {
	addr string
}

// errNil is Redis's nil reply (GET of a missing key).
var errNil = errors.New("redis: nil")

// redisError is an error reply ("-ERR ...").
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

// do sends one command and returns its reply: a string for simple strings
// and bulk strings, an int64 for integers; errNil for a nil bulk string, a
// redisError for an error reply.
func (c *redisClient) do(ctx context.Context, args ...string) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", c.addr, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if _, err := io.WriteString(conn, encodeCommand(args)); err != nil {
		return nil, fmt.Errorf("redis %s: send %s: %w", c.addr, args[0], err)
	}
	reply, err := readReply(bufio.NewReader(conn))
	if err != nil && !errors.Is(err, errNil) && !isRedisError(err) {
		return nil, fmt.Errorf("redis %s: %s: %w", c.addr, args[0], err)
	}
	return reply, err
}

func isRedisError(err error) bool {
	var re redisError
	return errors.As(err, &re)
}

// encodeCommand is args as a RESP array of bulk strings.
func encodeCommand(args []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// readReply reads one reply that is not an array.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("read reply: empty line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+':
		return rest, nil
	case '-':
		return nil, redisError(rest)
	case ':':
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read reply: bad integer %q", rest)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("read reply: bad bulk length %q", rest)
		}
		if n == -1 {
			return nil, errNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("read reply: %w", err)
		}
		if string(buf[n:]) != "\r\n" {
			return nil, errors.New("read reply: bulk string not ended by CRLF")
		}
		return string(buf[:n]), nil
	}
	return nil, fmt.Errorf("read reply: unsupported type %q", kind)
}

// get returns key's value; found is false when there is no such key.
func (c *redisClient) get(ctx context.Context, key string) (value string, found bool, err error) {
	reply, err := c.do(ctx, "GET", key)
	if errors.Is(err, errNil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	s, ok := reply.(string)
	if !ok {
		return "", false, fmt.Errorf("redis %s: GET answered %T", c.addr, reply)
	}
	return s, true, nil
}

func (c *redisClient) set(ctx context.Context, key, value string) error {
	reply, err := c.do(ctx, "SET", key, value)
	if err != nil {
		return err
	}
	if reply != "OK" {
		return fmt.Errorf("redis %s: SET answered %v", c.addr, reply)
	}
	return nil
}

func (c *redisClient) incr(ctx context.Context, key string) (int64, error) {
	reply, err := c.do(ctx, "INCR", key)
	if err != nil {
		return 0, err
	}
	n, ok := reply.(int64)
	if !ok {
		return 0, fmt.Errorf("redis %s: INCR answered %T", c.addr, reply)
	}
	return n, nil
}
