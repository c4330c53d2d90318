package ring

import "runtime"

func runtimeGosched() { runtime.Gosched() }
