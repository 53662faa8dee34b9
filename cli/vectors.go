package cli

import "errors"

func frameVectors(args []string, env Env) error {
	return errors.New("not built yet")
}
