package main

func cmdDemo(e *env, args []string) error {
	return nil
}
