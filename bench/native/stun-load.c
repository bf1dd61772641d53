/*
 * stun-load: a closed-loop STUN Binding load generator for natkit's benchmarks.
 * N sockets, each keeping M requests in flight; every response is answered by a new request. A request unanswered
 * for 250 ms is counted lost and replaced. Runs for D seconds, then prints one JSON line.
 * Sends only to the address given on the command line (the benchmarks give loopback addresses).
 *
 * usage: stun-load IP PORT SOCKETS INFLIGHT SECONDS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOCKETS 64
#define MAX_INFLIGHT 256
#define LOSS_NS 250000000LL

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct slot { uint32_t seq; int64_t sent; };

int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: stun-load IP PORT SOCKETS INFLIGHT SECONDS\n"); return 1; }
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) { fprintf(stderr, "bad IP\n"); return 1; }
  int nsock = atoi(argv[3]), inflight = atoi(argv[4]);
  double seconds = atof(argv[5]);
  if (nsock < 1 || nsock > MAX_SOCKETS || inflight < 1 || inflight > MAX_INFLIGHT || seconds <= 0 || seconds > 120) {
    fprintf(stderr, "out of range\n"); return 1;
  }
  int fds[MAX_SOCKETS];
  struct pollfd pfd[MAX_SOCKETS];
  static struct slot slots[MAX_SOCKETS][MAX_INFLIGHT];
  /* A plain Binding request (no attributes); bytes 8..15 of the id carry socket, slot and sequence number. */
  uint8_t req[20] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42 };
  for (int s = 0; s < nsock; s++) {
    fds[s] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int buf = 4 << 20;
    setsockopt(fds[s], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (connect(fds[s], (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 1; }
    pfd[s].fd = fds[s]; pfd[s].events = POLLIN;
  }
  uint64_t sent = 0, received = 0, lost = 0, bad = 0;
  uint32_t seq = 1;
  int64_t start = now_ns(), end = start + (int64_t)(seconds * 1e9);
  for (int s = 0; s < nsock; s++) {
    for (int i = 0; i < inflight; i++) {
      slots[s][i].seq = seq++;
      slots[s][i].sent = now_ns();
      memset(req + 8, 0, 12);
      req[8] = (uint8_t)s; req[9] = (uint8_t)i;
      memcpy(req + 12, &slots[s][i].seq, 4);
      if (send(fds[s], req, 20, 0) == 20) sent++;
    }
  }
  uint8_t buf[2048];
  int64_t last_sweep = start;
  for (;;) {
    int64_t t = now_ns();
    if (t >= end) break;
    int n = poll(pfd, (nfds_t)nsock, 20);
    if (n < 0 && errno != EINTR) { perror("poll"); return 1; }
    for (int s = 0; s < nsock; s++) {
      if (!(pfd[s].revents & POLLIN)) continue;
      for (int burst = 0; burst < 64; burst++) {
        ssize_t r = recv(fds[s], buf, sizeof buf, 0);
        if (r < 0) break;
        if (r < 20 || buf[0] != 0x01 || buf[1] != 0x01) { bad++; continue; }
        int i = buf[9];
        uint32_t q; memcpy(&q, buf + 12, 4);
        if (buf[8] != (uint8_t)s || i >= inflight || slots[s][i].seq != q) { bad++; continue; }
        received++;
        slots[s][i].seq = seq++;
        slots[s][i].sent = now_ns();
        req[8] = (uint8_t)s; req[9] = (uint8_t)i;
        memcpy(req + 12, &slots[s][i].seq, 4);
        if (send(fds[s], req, 20, 0) == 20) sent++;
      }
    }
    if (t - last_sweep > 50000000LL) {
      last_sweep = t;
      for (int s = 0; s < nsock; s++) for (int i = 0; i < inflight; i++) {
        if (t - slots[s][i].sent > LOSS_NS) {
          lost++;
          slots[s][i].seq = seq++;
          slots[s][i].sent = t;
          req[8] = (uint8_t)s; req[9] = (uint8_t)i;
          memcpy(req + 12, &slots[s][i].seq, 4);
          if (send(fds[s], req, 20, 0) == 20) sent++;
        }
      }
    }
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  printf("{\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"bad\":%llu,\"seconds\":%.3f,\"rate\":%.1f}\n",
         (unsigned long long)sent, (unsigned long long)received, (unsigned long long)lost, (unsigned long long)bad,
         elapsed, (double)received / elapsed);
  return 0;
}
