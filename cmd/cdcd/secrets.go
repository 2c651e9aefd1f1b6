package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// passwordSource returns how a cluster's password is read for each new
// connection, or nil when the DSN needs none. The file is re-read every
// time, so a rotated mounted secret needs no restart.
func passwordSource(cl *Cluster) func(context.Context) (string, error) {
	switch {
	case cl.PasswordEnv != "":
		name := cl.PasswordEnv
		return func(context.Context) (string, error) {
			v, ok := os.LookupEnv(name)
			if !ok {
				return "", fmt.Errorf("environment variable %s (cluster %s password_env) is not set", name, cl.Name)
			}
			return v, nil
		}
	case cl.PasswordFile != "":
		path := cl.PasswordFile
		return func(context.Context) (string, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("read cluster %s password_file: %w", cl.Name, err)
			}
			return strings.TrimRight(string(b), "\r\n"), nil
		}
	}
	return nil
}
