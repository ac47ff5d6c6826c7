/* The cold-path load client of bench/gateway.py (compiled there with the system cc; never committed built).
 *
 * Usage: coldclient HOST PORT COUNT PATH
 * Opens COUNT connections at once (non-blocking connects, one burst), sends one small POST with
 * "Connection: close" on each as soon as it connects, then reads every answer to its end. Prints, on
 * stdout, CLOCK_MONOTONIC nanoseconds (the clock Python's time.monotonic reads):
 *   start <ns>                 before the first connect
 *   sent <ns>                  when every request has been written
 *   first <ns> / done <ns>     per connection: its first answer byte / its end of answer
 *   failed <count>             connections that failed or ended without an answer byte
 * A Python client cannot open 10k connections and time their first bytes without being the bottleneck
 * itself; one epoll loop in C can.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
    long long first;
    long long done;
};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: coldclient HOST PORT COUNT PATH\n");
        return 2;
    }
    int count = atoi(argv[3]);
    setvbuf(stdout, NULL, _IOLBF, 0); /* the bench reads "start" before the rest */
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);

    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &address.sin_addr);
    char request[512];
    int request_length = snprintf(request, sizeof request,
                                  "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                                  argv[4]);

    struct conn *conns = calloc((size_t)count, sizeof *conns);
    int epoll = epoll_create1(0);
    printf("start %lld\n", now_ns());
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
                if (write(c->fd, request, (size_t)request_length) == request_length) {
                    c->sent = 1;
                    if (++sent == count)
                        printf("sent %lld\n", now_ns());
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
        if (conns[i].first)
            printf("first %lld\ndone %lld\n", conns[i].first, conns[i].done);
    }
    printf("failed %d\n", failed + (count - ended));
    return 0;
}
