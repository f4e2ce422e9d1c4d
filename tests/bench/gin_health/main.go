// gin_health: the peer of tests/bench/http_health.sh.  Gin's hello handler answering what
// vigil-api's GET /health answers ({"status":"ok"}, application/json), with gin.New() (no logger
// middleware, no recovery) in release mode: the least plumbing Gin offers.  Built by the bench
// script in GOPATH mode against Debian's golang-github-gin-gonic-gin-dev (/usr/share/gocode).
//
// Usage: gin-health 127.0.0.1:PORT
package main

import (
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/health", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	if err := r.Run(os.Args[1]); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
