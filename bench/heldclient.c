/* The load client of bench/shared.py's cold part (compiled there with the system cc; never committed built):
 * held requests for many models on one shared gateway.
 *
 * Usage: heldclient HOST PORT PATH < PLAN
 * PLAN has one model name per line; request i (from 0) asks for the model on line i. Opens every
 * connection at once (non-blocking connects, one burst) and sends on each, as soon as it connects,
 *   POST PATH?seq=<i> HTTP/1.1 ... Connection: close   with the body {"model":"<name>",...}
 * then reads every answer to its end. The seq in the target lets the bench match what the gateway saw
 * arrive with what this client saw answered. Prints, on stdout, CLOCK_MONOTONIC nanoseconds (the clock
 * Python's time.monotonic reads):
 *   start <ns>                          before the first connect
 *   sent <ns>                           when every request has been written
 *   r <seq> <status> <first> <done>     per answered request: HTTP status, first answer byte, end of answer
 *   failed <count>                      connections that failed or ended without an answer byte
 * bench/coldclient.c sends one body to every connection; a shared gateway routes by the body's model, so
 * this one carries a plan. A Python client could not open thousands of connections and time their first
 * bytes without being the bottleneck itself; one epoll loop in C can.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    int sent;
    int head_length;
    char head[16]; /* "HTTP/1.1 200" is all that is kept of the answer */
    char *request;
    int request_length;
    long long first;
    long long done;
};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: heldclient HOST PORT PATH < PLAN\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);

    int capacity = 1024, count = 0;
    struct conn *conns = calloc((size_t)capacity, sizeof *conns);
    char model[512];
    while (fgets(model, sizeof model, stdin)) {
        model[strcspn(model, "\r\n")] = 0;
        if (!model[0])
            continue;
        if (count == capacity) {
            capacity *= 2;
            conns = realloc(conns, (size_t)capacity * sizeof *conns);
            memset(conns + count, 0, (size_t)(capacity - count) * sizeof *conns);
        }
        char body[700];
        int body_length = snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"hi\",\"max_tokens\":1}", model);
        char *request = malloc(1024 + sizeof body);
        conns[count].request_length = snprintf(
            request, 1024 + sizeof body,
            "POST %s?seq=%d HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
            argv[3], count, body_length, body);
        conns[count].request = request;
        count++;
    }

    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &address.sin_addr);
    int epoll = epoll_create1(0);
    printf("start %lld\n", now_ns());
    fflush(stdout); /* the bench reads "start" before the rest */
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            perror("socket");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
            perror("connect");
            return 1;
        }
        conns[i].fd = fd;
        struct epoll_event event = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (unsigned)i};
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    }
    int sent = 0, ended = 0, failed = 0;
    struct epoll_event events[1024];
    char buffer[65536];
    while (ended < count) {
        int ready = epoll_wait(epoll, events, 1024, 600000);
        if (ready <= 0)
            break;
        long long at = now_ns();
        for (int k = 0; k < ready; k++) {
            struct conn *c = &conns[events[k].data.u32];
            if (c->fd < 0)
                continue;
            if (!c->sent && (events[k].events & EPOLLOUT)) {
                if (write(c->fd, c->request, (size_t)c->request_length) == c->request_length) {
                    c->sent = 1;
                    if (++sent == count) {
                        printf("sent %lld\n", now_ns());
                        fflush(stdout);
                    }
                    struct epoll_event event = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = events[k].data.u32};
                    epoll_ctl(epoll, EPOLL_CTL_MOD, c->fd, &event);
                }
            }
            if (events[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t got = read(c->fd, buffer, sizeof buffer);
                    if (got > 0) {
                        if (!c->first)
                            c->first = at;
                        int keep = (int)sizeof c->head - 1 - c->head_length;
                        if (keep > got)
                            keep = (int)got;
                        memcpy(c->head + c->head_length, buffer, (size_t)keep);
                        c->head_length += keep;
                        continue;
                    }
                    if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                        c->done = at;
                        if (!c->first)
                            failed++;
                        close(c->fd);
                        c->fd = -1;
                        ended++;
                    }
                    break;
                }
            }
        }
    }
    for (int i = 0; i < count; i++) {
        if (conns[i].first) {
            int status = 0;
            sscanf(conns[i].head, "HTTP/%*s %d", &status);
            printf("r %d %d %lld %lld\n", i, status, conns[i].first, conns[i].done);
        }
    }
    printf("failed %d\n", failed + (count - ended));
    return 0;
}
