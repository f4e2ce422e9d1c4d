/* whsink.c - a webhook consumer for the benchmarks: an HTTP/1.1 server on 127.0.0.1 that answers
 * every request 204 on its kept-alive connection and appends each request's body to a file, one
 * line each, so a benchmark can count what arrived.
 *
 * usage: whsink PORT OUTFILE
 *
 * It stands in for a consumer on another host: written in C so that what it costs the shared
 * CPUs (a few microseconds a request) stays out of the decisions it is measured beside, where
 * tests/tools/webhook_receiver.py (Python's http.server, ~0.4 ms of CPU a request) would not.
 * One thread per connection (the dispatcher keeps at most VIGIL_WEBHOOK_CONCURRENCY open).
 * Requests: a head of at most 8 KiB and a Content-Length body of at most 1 MiB; anything else
 * closes the connection.  Not for the tests' checks (no headers kept): those use the Python one. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX 8192
#define BODY_MAX (1 << 20)

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct conn {
    int fd;
    FILE *out;
} conn;

/* The Content-Length of a head (NUL-terminated): 0 when absent, -1 when malformed. */
static long content_length(const char *head)
{
    for (const char *p = strchr(head, '\n'); p; p = strchr(p + 1, '\n')) {
        if (strncasecmp(p + 1, "content-length:", 15) == 0) {
            char *end;
            long n = strtol(p + 16, &end, 10);
            return end == p + 16 || n < 0 ? -1 : n;
        }
    }
    return 0;
}

/* Serves one connection until it closes or misbehaves; frees c. */
static void *serve(void *arg)
{
    conn *c = arg;
    char *buf = malloc(HEAD_MAX + BODY_MAX + 1);
    size_t have = 0;
    static const char answer[] = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
    while (buf) {
        char *end = NULL;
        while (!(end = have ? strstr(buf, "\r\n\r\n") : NULL)) {
            if (have >= HEAD_MAX)
                goto done;
            ssize_t n = read(c->fd, buf + have, HEAD_MAX - have);
            if (n <= 0)
                goto done;
            have += (size_t)n;
            buf[have] = '\0';
        }
        size_t head = (size_t)(end - buf) + 4;
        end[2] = '\0'; /* the head's text, for content_length */
        long body = content_length(buf);
        if (body < 0 || body > BODY_MAX)
            goto done;
        while (have < head + (size_t)body) {
            ssize_t n = read(c->fd, buf + have, head + (size_t)body - have);
            if (n <= 0)
                goto done;
            have += (size_t)n;
        }
        pthread_mutex_lock(&out_mu);
        fwrite(buf + head, 1, (size_t)body, c->out);
        fputc('\n', c->out);
        fflush(c->out);
        pthread_mutex_unlock(&out_mu);
        if (write(c->fd, answer, sizeof answer - 1) != (ssize_t)(sizeof answer - 1))
            goto done;
        have -= head + (size_t)body; /* a pipelined next request stays */
        memmove(buf, buf + head + (size_t)body, have);
        buf[have] = '\0';
    }
done:
    free(buf);
    close(c->fd);
    free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: whsink PORT OUTFILE\n");
        return 2;
    }
    FILE *out = fopen(argv[2], "a");
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!out || fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        perror("whsink");
        return 1;
    }
    for (;;) {
        int cfd = accept(fd, NULL, NULL);
        if (cfd < 0)
            continue;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = malloc(sizeof *c);
        pthread_t t;
        if (!c) {
            close(cfd);
            continue;
        }
        *c = (conn){cfd, out};
        if (pthread_create(&t, NULL, serve, c) != 0) {
            close(cfd);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
}
