/* dvrflow: the data-plane benchmark's traffic generator (dvrnet bench, bench/flows.py).
 *
 * Small, single-threaded, epoll/sendmmsg based; every mode prints one line of key=value pairs.
 *
 *   dvrflow udp-send  DST PORT SECONDS LEN [SRC]      blast LEN-byte UDP payloads (sendmmsg, 64/call)
 *   dvrflow udp-sink  ADDR PORT IDLE_MS               count datagrams until IDLE_MS without one
 *                                                     (after the first); rate = between first and last
 *   dvrflow tcp-serve ADDR PORT                       accept and close, forever (kill it)
 *   dvrflow tcp-crr   DST PORT SECONDS CONC [SRC]     connect/close loop, CONC in flight, RST on close
 *   dvrflow tcp-probe DST PORT SECONDS EVERY_MS TIMEOUT_MS [SRC]
 *                                                     one connection every EVERY_MS; failed if not
 *                                                     established within TIMEOUT_MS
 *   dvrflow udp-hold  SRC DST0 NDST PORT0 FLOWS SECONDS PPS
 *                                                     open FLOWS UDP flows (one source port, DST0+i
 *                                                     addresses x PORT0+j ports), send each again after
 *                                                     2.5 s (so conntrack marks it assured) and every
 *                                                     20 s after that; counts flows that got a reply
 *   dvrflow udp-reflect PORT0 PORT1                   raw socket: answer every UDP datagram to a local
 *                                                     address with destination port in [PORT0, PORT1]
 *                                                     by swapping addresses and ports (no socket per flow)
 *
 * Written for dvrnet; no code taken from elsewhere.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "dvrflow: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct sockaddr_in addr(const char *ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        fprintf(stderr, "dvrflow: bad address %s\n", ip);
        exit(2);
    }
    return a;
}

static void bind_src(int fd, const char *src) {
    if (!src) return;
    struct sockaddr_in s = addr(src, 0);
    if (bind(fd, (struct sockaddr *)&s, sizeof s) < 0) die("bind source");
}

static void raise_nofile(void) {
    struct rlimit r = {1 << 20, 1 << 20};
    if (setrlimit(RLIMIT_NOFILE, &r) < 0) {
        getrlimit(RLIMIT_NOFILE, &r);
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static int udp_send(int argc, char **argv) {
    if (argc < 4) return 2;
    struct sockaddr_in d = addr(argv[0], atoi(argv[1]));
    double secs = atof(argv[2]);
    int len = atoi(argv[3]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    bind_src(fd, argc > 4 ? argv[4] : NULL);
    if (connect(fd, (struct sockaddr *)&d, sizeof d) < 0) die("connect");
    char buf[2048];
    memset(buf, 0x5a, sizeof buf);
    if (len > (int)sizeof buf) len = sizeof buf;
    struct mmsghdr m[64];
    struct iovec v[64];
    for (int i = 0; i < 64; i++) {
        v[i].iov_base = buf;
        v[i].iov_len = (size_t)len;
        memset(&m[i], 0, sizeof m[i]);
        m[i].msg_hdr.msg_iov = &v[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    long sent = 0, errs = 0;
    double t0 = now(), end = t0 + secs, t = t0;
    while (t < end) {
        int n = sendmmsg(fd, m, 64, 0);
        if (n > 0) sent += n;
        else errs++;
        t = now();
    }
    t = now();
    printf("mode=udp-send sent=%ld errors=%ld seconds=%.3f pps=%.0f\n", sent, errs, t - t0, sent / (t - t0));
    return 0;
}

static int udp_sink(int argc, char **argv) {
    if (argc < 3) return 2;
    struct sockaddr_in a = addr(argv[0], atoi(argv[1]));
    int idle_ms = atoi(argv[2]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    int big = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    printf("mode=udp-sink ready=1\n");
    fflush(stdout);
    char bufs[64][256];
    struct mmsghdr m[64];
    struct iovec v[64];
    for (int i = 0; i < 64; i++) {
        v[i].iov_base = bufs[i];
        v[i].iov_len = sizeof bufs[i];
        memset(&m[i], 0, sizeof m[i]);
        m[i].msg_hdr.msg_iov = &v[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    long got = 0;
    double first = 0, last = 0;
    struct timeval tv = {0, 0};
    for (;;) {
        int wait_ms = got ? idle_ms : 30000;
        tv.tv_sec = wait_ms / 1000;
        tv.tv_usec = (wait_ms % 1000) * 1000;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int n = recvmmsg(fd, m, 64, MSG_WAITFORONE, NULL);
        if (n <= 0) break;
        last = now();
        if (!got) first = last;
        got += n;
    }
    double span = last - first;
    printf("mode=udp-sink received=%ld seconds=%.3f pps=%.0f\n", got, span, span > 0 ? (got - 1) / span : 0.0);
    return 0;
}

static int listener(const char *ip, int port) {
    struct sockaddr_in a = addr(ip, port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 4096) < 0) die("listen");
    return fd;
}

static int tcp_serve(int argc, char **argv) {
    if (argc < 2) return 2;
    raise_nofile();
    int lfd = listener(argv[0], atoi(argv[1]));
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    printf("mode=tcp-serve ready=1\n");
    fflush(stdout);
    for (;;) {
        struct epoll_event ev[16];
        int n = epoll_wait(ep, ev, 16, -1);
        for (int i = 0; i < n; i++) {
            for (;;) {
                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0) break;
                close(c);
            }
        }
    }
    return 0;
}

struct pend { int fd; double t; };

static int start_connect(int ep, struct sockaddr_in *d, const char *src) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src) {
        struct sockaddr_in s = addr(src, 0);
        setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&s, sizeof s) < 0) { close(fd); return -1; }
    }
    int r = connect(fd, (struct sockaddr *)d, sizeof *d);
    if (r < 0 && errno != EINPROGRESS) { close(fd); return -1; }
    struct epoll_event e = {.events = EPOLLOUT, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    return fd;
}

static void rst_close(int fd) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static int connected(int fd) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
    return err == 0;
}

static int tcp_crr(int argc, char **argv) {
    if (argc < 4) return 2;
    raise_nofile();
    struct sockaddr_in d = addr(argv[0], atoi(argv[1]));
    double secs = atof(argv[2]);
    int conc = atoi(argv[3]);
    const char *src = argc > 4 ? argv[4] : NULL;
    int ep = epoll_create1(0);
    long ok = 0, fail = 0;
    int inflight = 0;
    double t0 = now(), end = t0 + secs;
    for (int i = 0; i < conc; i++)
        if (start_connect(ep, &d, src) >= 0) inflight++;
    struct epoll_event ev[256];
    while (now() < end) {
        int n = epoll_wait(ep, ev, 256, 100);
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (connected(fd)) ok++; else fail++;
            rst_close(fd);
            inflight--;
            if (start_connect(ep, &d, src) >= 0) inflight++; else fail++;
        }
    }
    double t = now() - t0;
    printf("mode=tcp-crr ok=%ld failed=%ld seconds=%.3f cps=%.0f\n", ok, fail, t, ok / t);
    return 0;
}

static int tcp_probe(int argc, char **argv) {
    if (argc < 5) return 2;
    raise_nofile();
    struct sockaddr_in d = addr(argv[0], atoi(argv[1]));
    double secs = atof(argv[2]), every = atof(argv[3]) / 1000, timeout = atof(argv[4]) / 1000;
    const char *src = argc > 5 ? argv[5] : NULL;
    int ep = epoll_create1(0);
    enum { MAXP = 4096 };
    static struct pend p[MAXP];
    int np = 0;
    long ok = 0, fail = 0;
    double worst = 0, t0 = now(), next = t0, end = t0 + secs;
    for (;;) {
        double t = now();
        if (t >= next && t < end && np < MAXP) {
            int fd = start_connect(ep, &d, src);
            if (fd < 0) fail++;
            else { p[np].fd = fd; p[np].t = t; np++; }
            next += every;
        }
        if (t >= end && np == 0) break;
        double wait = next - now();
        int ms = wait > 0 ? (int)(wait * 1000) : 0;
        struct epoll_event ev[64];
        int n = epoll_wait(ep, ev, 64, ms < 1 ? 1 : ms);
        t = now();
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            for (int k = 0; k < np; k++) if (p[k].fd == fd) {
                if (connected(fd)) { ok++; if (t - p[k].t > worst) worst = t - p[k].t; } else fail++;
                rst_close(fd);
                p[k] = p[--np];
                break;
            }
        }
        for (int k = 0; k < np; k++) if (t - p[k].t > timeout) {
            fail++;
            rst_close(p[k].fd);
            p[k] = p[--np];
            k--;
        }
    }
    printf("mode=tcp-probe ok=%ld failed=%ld worst_ms=%.1f\n", ok, fail, worst * 1000);
    return 0;
}

static int udp_hold(int argc, char **argv) {
    if (argc < 7) return 2;
    raise_nofile();
    const char *src = argv[0];
    struct sockaddr_in d0 = addr(argv[1], 0);
    int ndst = atoi(argv[2]), port0 = atoi(argv[3]);
    long flows = atol(argv[4]);
    double secs = atof(argv[5]), pps = atof(argv[6]);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int big = 32 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    struct sockaddr_in s = addr(src, 40000);
    if (bind(fd, (struct sockaddr *)&s, sizeof s) < 0) die("bind");
    long per_dst = (flows + ndst - 1) / ndst;
    if (port0 + per_dst > 65535) { fprintf(stderr, "dvrflow: too many flows per destination\n"); return 2; }
    unsigned char *replied = calloc((size_t)flows, 1);
    long nreplied = 0, sent = 0, errs = 0;
    char buf[64] = "dvrflow-hold";
    char rbuf[256];
    double t0 = now(), end = t0 + secs;
    int pass = 0;
    double pass_start = t0;
    while (now() < end) {
        pass_start = now();
        for (long i = 0; i < flows && now() < end; i++) {
            struct sockaddr_in d = d0;
            d.sin_addr.s_addr = htonl(ntohl(d0.sin_addr.s_addr) + (uint32_t)(i / per_dst));
            d.sin_port = htons((uint16_t)(port0 + i % per_dst));
            if (sendto(fd, buf, 16, 0, (struct sockaddr *)&d, sizeof d) == 16) sent++; else errs++;
            if (pps > 0 && (i & 63) == 63) {
                double due = pass_start + (i + 1) / pps;
                while (now() < due) {
                    struct sockaddr_in f; socklen_t fl = sizeof f;
                    ssize_t r = recvfrom(fd, rbuf, sizeof rbuf, 0, (struct sockaddr *)&f, &fl);
                    if (r < 0) { usleep(200); continue; }
                    long j = (long)(ntohl(f.sin_addr.s_addr) - ntohl(d0.sin_addr.s_addr)) * per_dst
                             + (ntohs(f.sin_port) - port0);
                    if (j >= 0 && j < flows && !replied[j]) { replied[j] = 1; nreplied++; }
                }
            }
        }
        pass++;
        if (pass == 1) fprintf(stderr, "dvrflow: hold: first pass done, %ld replied\n", nreplied);
        double next = pass_start + (pass == 1 ? 2.5 : 20.0);
        while (now() < next && now() < end) {
            struct sockaddr_in f; socklen_t fl = sizeof f;
            ssize_t r = recvfrom(fd, rbuf, sizeof rbuf, 0, (struct sockaddr *)&f, &fl);
            if (r < 0) { usleep(1000); continue; }
            long j = (long)(ntohl(f.sin_addr.s_addr) - ntohl(d0.sin_addr.s_addr)) * per_dst
                     + (ntohs(f.sin_port) - port0);
            if (j >= 0 && j < flows && !replied[j]) { replied[j] = 1; nreplied++; }
        }
        if (pass >= 2) {
            printf("mode=udp-hold pass=%d flows=%ld replied=%ld sent=%ld errors=%ld\n", pass, flows, nreplied,
                   sent, errs);
            fflush(stdout);
        }
    }
    printf("mode=udp-hold done=1 flows=%ld replied=%ld sent=%ld errors=%ld\n", flows, nreplied, sent, errs);
    return 0;
}

static uint16_t csum(const void *p, int len) {
    const uint16_t *w = p;
    uint32_t s = 0;
    for (; len > 1; len -= 2) s += *w++;
    if (len) s += *(const uint8_t *)w;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static int udp_reflect(int argc, char **argv) {
    if (argc < 2) return 2;
    int p0 = atoi(argv[0]), p1 = atoi(argv[1]);
    int in = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    int out = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (in < 0 || out < 0) die("raw socket");
    int big = 32 << 20;
    setsockopt(in, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(out, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    printf("mode=udp-reflect ready=1\n");
    fflush(stdout);
    unsigned char b[2048];
    long n = 0;
    for (;;) {
        ssize_t r = recv(in, b, sizeof b, 0);
        if (r < (ssize_t)(sizeof(struct iphdr) + sizeof(struct udphdr))) continue;
        struct iphdr *ip = (struct iphdr *)b;
        int hl = ip->ihl * 4;
        if (r < hl + (ssize_t)sizeof(struct udphdr)) continue;
        struct udphdr *u = (struct udphdr *)(b + hl);
        int dp = ntohs(u->dest);
        if (dp < p0 || dp > p1) continue;
        uint32_t a = ip->saddr; ip->saddr = ip->daddr; ip->daddr = a;
        uint16_t pt = u->source; u->source = u->dest; u->dest = pt;
        u->check = 0;
        ip->ttl = 64;
        ip->check = 0;
        ip->check = csum(ip, hl);
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = ip->daddr};
        sendto(out, b, (size_t)r, 0, (struct sockaddr *)&to, sizeof to);
        n++;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dvrflow MODE ARGS (see the top of dvrflow.c)\n");
        return 2;
    }
    const char *m = argv[1];
    int r = 2;
    if (!strcmp(m, "udp-send")) r = udp_send(argc - 2, argv + 2);
    else if (!strcmp(m, "udp-sink")) r = udp_sink(argc - 2, argv + 2);
    else if (!strcmp(m, "tcp-serve")) r = tcp_serve(argc - 2, argv + 2);
    else if (!strcmp(m, "tcp-crr")) r = tcp_crr(argc - 2, argv + 2);
    else if (!strcmp(m, "tcp-probe")) r = tcp_probe(argc - 2, argv + 2);
    else if (!strcmp(m, "udp-hold")) r = udp_hold(argc - 2, argv + 2);
    else if (!strcmp(m, "udp-reflect")) r = udp_reflect(argc - 2, argv + 2);
    if (r == 2) fprintf(stderr, "dvrflow: %s: bad arguments (see the top of dvrflow.c)\n", m);
    return r;
}
