/*
 * turn-load: a saturating TURN relay load generator for natkit's benchmarks (npm run bench -- relay).
 * Makes ALLOCS allocations (RFC 8656 Allocate with long-term credentials, then ChannelBind 0x4000 to an echo peer it
 * runs itself), then keeps INFLIGHT ChannelData messages of PAYLOAD bytes in flight on each allocation for SECONDS:
 * client -> relay -> peer (echoes) -> relay -> client, every echo answered by a new message; one unanswered for
 * 250 ms is counted lost and replaced. I/O is batched with recvmmsg/sendmmsg. Prints one JSON line.
 * Each delivered echo is two relayed packets. Sends only to the server address given and to its own peer socket
 * (the benchmarks give loopback addresses).
 *
 * usage: turn-load SERVER_IP PORT USER PASSWORD ALLOCS INFLIGHT SECONDS PAYLOAD
 * build: gcc -O2 -o turn-load turn-load.c -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ALLOCS 512
#define MAX_INFLIGHT 64
#define BATCH 64
#define LOSS_NS 250000000LL
#define MAGIC 0x2112A442u

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- STUN message building ---- */
struct msg { uint8_t b[1024]; size_t n; };

static void msg_start(struct msg *m, uint16_t type) {
  memset(m, 0, sizeof *m);
  m->b[0] = type >> 8; m->b[1] = type & 0xff;
  m->b[4] = 0x21; m->b[5] = 0x12; m->b[6] = 0xa4; m->b[7] = 0x42;
  for (int i = 8; i < 20; i++) m->b[i] = (uint8_t)rand();
  m->n = 20;
}

static void msg_attr(struct msg *m, uint16_t type, const void *v, size_t len) {
  m->b[m->n] = type >> 8; m->b[m->n + 1] = type & 0xff;
  m->b[m->n + 2] = (uint8_t)(len >> 8); m->b[m->n + 3] = len & 0xff;
  memcpy(m->b + m->n + 4, v, len);
  m->n += 4 + ((len + 3) & ~(size_t)3);
  size_t body = m->n - 20;
  m->b[2] = (uint8_t)(body >> 8); m->b[3] = body & 0xff;
}

/* MESSAGE-INTEGRITY: HMAC-SHA1 with the long-term key over the message, its length counting the attribute. */
static void msg_integrity(struct msg *m, const uint8_t key[16]) {
  size_t body = m->n - 20 + 24;
  m->b[2] = (uint8_t)(body >> 8); m->b[3] = body & 0xff;
  uint8_t mac[20]; unsigned int maclen = 0;
  HMAC(EVP_sha1(), key, 16, m->b, m->n, mac, &maclen);
  msg_attr(m, 0x0008, mac, 20);
}

/* Find an attribute in a response; its value and length, or NULL. */
static const uint8_t *attr_find(const uint8_t *b, size_t n, uint16_t type, size_t *len) {
  size_t off = 20;
  while (off + 4 <= n) {
    uint16_t t = (uint16_t)(b[off] << 8 | b[off + 1]);
    size_t l = (size_t)(b[off + 2] << 8 | b[off + 3]);
    if (off + 4 + l > n) return NULL;
    if (t == type) { *len = l; return b + off + 4; }
    off += 4 + ((l + 3) & ~(size_t)3);
  }
  return NULL;
}

/* Send a request on a connected socket and wait (bounded) for the response with the same transaction id. */
static ssize_t transact(int fd, const struct msg *m, uint8_t *resp, size_t cap) {
  for (int attempt = 0; attempt < 5; attempt++) {
    if (send(fd, m->b, m->n, 0) != (ssize_t)m->n) return -1;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int64_t until = now_ns() + 500000000LL;
    while (now_ns() < until) {
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t r = recv(fd, resp, cap, 0);
      if (r >= 20 && memcmp(resp + 8, m->b + 8, 12) == 0) return r;
    }
  }
  return -1;
}

static int setup_allocation(int fd, const char *user, const char *pass, const struct sockaddr_in *peer, const char **why) {
  uint8_t resp[2048];
  struct msg m;
  uint8_t transport[4] = { 17, 0, 0, 0 };
  msg_start(&m, 0x0003);
  msg_attr(&m, 0x0019, transport, 4);
  ssize_t r = transact(fd, &m, resp, sizeof resp);
  if (r < 0) { *why = "no answer to Allocate"; return -1; }
  size_t rl = 0, nl = 0;
  const uint8_t *realm = attr_find(resp, (size_t)r, 0x0014, &rl), *nonce = attr_find(resp, (size_t)r, 0x0015, &nl);
  if (realm == NULL || nonce == NULL || rl > 255 || nl > 255) { *why = "no REALM/NONCE in the 401"; return -1; }
  char realm_s[256], nonce_s[256];
  memcpy(realm_s, realm, rl); realm_s[rl] = 0;
  memcpy(nonce_s, nonce, nl); nonce_s[nl] = 0;
  /* key = MD5(username ":" realm ":" password), RFC 8489 section 9.2.2 */
  char text[1024];
  int tl = snprintf(text, sizeof text, "%s:%s:%s", user, realm_s, pass);
  uint8_t key[16]; unsigned int kl = 0;
  EVP_Digest(text, (size_t)tl, key, &kl, EVP_md5(), NULL);

  msg_start(&m, 0x0003);
  msg_attr(&m, 0x0019, transport, 4);
  msg_attr(&m, 0x0006, user, strlen(user));
  msg_attr(&m, 0x0014, realm_s, rl);
  msg_attr(&m, 0x0015, nonce_s, nl);
  msg_integrity(&m, key);
  r = transact(fd, &m, resp, sizeof resp);
  if (r < 0) { *why = "no answer to the authenticated Allocate"; return -1; }
  if (resp[0] != 0x01 || resp[1] != 0x03) {
    /* ERROR-CODE (RFC 8489 section 14.8): class in byte 2, number in byte 3 of its value. */
    static char reason[64];
    size_t el = 0;
    const uint8_t *ec = attr_find(resp, (size_t)r, 0x0009, &el);
    if (ec != NULL && el >= 4) snprintf(reason, sizeof reason, "Allocate failed: error %d", (ec[2] & 7) * 100 + ec[3]);
    else snprintf(reason, sizeof reason, "Allocate failed: type 0x%02x%02x", resp[0], resp[1]);
    *why = reason;
    return -1;
  }

  uint8_t ch[4] = { 0x40, 0x00, 0, 0 };
  uint8_t xpeer[8] = { 0, 1 };
  uint16_t xport = (uint16_t)(ntohs(peer->sin_port) ^ (MAGIC >> 16));
  uint32_t xaddr = ntohl(peer->sin_addr.s_addr) ^ MAGIC;
  xpeer[2] = xport >> 8; xpeer[3] = xport & 0xff;
  xpeer[4] = xaddr >> 24; xpeer[5] = (xaddr >> 16) & 0xff; xpeer[6] = (xaddr >> 8) & 0xff; xpeer[7] = xaddr & 0xff;
  msg_start(&m, 0x0009);
  msg_attr(&m, 0x000C, ch, 4);
  msg_attr(&m, 0x0012, xpeer, 8);
  msg_attr(&m, 0x0006, user, strlen(user));
  msg_attr(&m, 0x0014, realm_s, rl);
  msg_attr(&m, 0x0015, nonce_s, nl);
  msg_integrity(&m, key);
  r = transact(fd, &m, resp, sizeof resp);
  if (r < 0 || resp[0] != 0x01 || resp[1] != 0x09) { *why = "ChannelBind failed"; return -1; }
  return 0;
}

struct slot { uint32_t seq; int64_t sent; };

int main(int argc, char **argv) {
  if (argc != 9) { fprintf(stderr, "usage: turn-load SERVER_IP PORT USER PASSWORD ALLOCS INFLIGHT SECONDS PAYLOAD\n"); return 1; }
  struct sockaddr_in server = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
  if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) { fprintf(stderr, "bad IP\n"); return 1; }
  const char *user = argv[3], *pass = argv[4];
  int nalloc = atoi(argv[5]), inflight = atoi(argv[6]), payload = atoi(argv[8]);
  double seconds = atof(argv[7]);
  if (nalloc < 1 || nalloc > MAX_ALLOCS || inflight < 1 || inflight > MAX_INFLIGHT || seconds <= 0 || seconds > 600 ||
      payload < 12 || payload > 1200 || strlen(user) > 200 || strlen(pass) > 200) { fprintf(stderr, "out of range\n"); return 1; }
  srand((unsigned)now_ns());

  /* The echo peer: one socket on the server's address family, loopback. */
  int peer = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in peer_addr = { .sin_family = AF_INET };
  inet_pton(AF_INET, "127.0.0.1", &peer_addr.sin_addr);
  int big = 8 << 20;
  setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  if (bind(peer, (struct sockaddr *)&peer_addr, sizeof peer_addr) != 0) { perror("bind peer"); return 1; }
  socklen_t pl = sizeof peer_addr;
  getsockname(peer, (struct sockaddr *)&peer_addr, &pl);

  static int fds[MAX_ALLOCS];
  static struct pollfd pfd[MAX_ALLOCS + 1];
  static struct slot slots[MAX_ALLOCS][MAX_INFLIGHT];
  int64_t setup_start = now_ns();
  for (int a = 0; a < nalloc; a++) {
    fds[a] = socket(AF_INET, SOCK_DGRAM, 0);
    int buf = 1 << 20;
    setsockopt(fds[a], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (connect(fds[a], (struct sockaddr *)&server, sizeof server) != 0) { perror("connect"); return 1; }
    const char *why = "";
    if (setup_allocation(fds[a], user, pass, &peer_addr, &why) != 0) {
      printf("{\"error\":\"allocation %d: %s\"}\n", a, why);
      return 2;
    }
  }
  for (int a = 0; a < nalloc; a++) {
    if (fcntl(fds[a], F_SETFL, fcntl(fds[a], F_GETFL) | O_NONBLOCK) != 0) { perror("fcntl"); return 1; }
    pfd[a].fd = fds[a]; pfd[a].events = POLLIN;
  }
  pfd[nalloc].fd = peer; pfd[nalloc].events = POLLIN;
  double setup_s = (double)(now_ns() - setup_start) / 1e9;

  /* ChannelData: channel 0x4000, length, then the payload whose first 12 bytes are allocation, slot, sequence. */
  int dlen = 4 + payload;
  static uint8_t out[BATCH][1280];
  static struct mmsghdr omsg[BATCH];
  static struct iovec oiov[BATCH];
  static uint8_t in[BATCH][2048];
  static struct mmsghdr imsg[BATCH];
  static struct iovec iiov[BATCH];
  static struct sockaddr_in from[BATCH];
  for (int i = 0; i < BATCH; i++) {
    out[i][0] = 0x40; out[i][1] = 0x00; out[i][2] = (uint8_t)(payload >> 8); out[i][3] = payload & 0xff;
    memset(out[i] + 16, 0xab, (size_t)payload - 12);
    oiov[i].iov_base = out[i]; oiov[i].iov_len = (size_t)dlen;
    omsg[i].msg_hdr.msg_iov = &oiov[i]; omsg[i].msg_hdr.msg_iovlen = 1;
    iiov[i].iov_base = in[i]; iiov[i].iov_len = sizeof in[i];
    imsg[i].msg_hdr.msg_iov = &iiov[i]; imsg[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0, received = 0, lost = 0, bad = 0, echoed = 0;
  uint32_t seq = 1;
  int nout = 0;
#define QUEUE(A, I) do { \
    slots[A][I].seq = seq++; slots[A][I].sent = now_ns(); \
    uint32_t a32 = (uint32_t)(A), i32 = (uint32_t)(I); \
    memcpy(out[nout] + 4, &a32, 4); memcpy(out[nout] + 8, &i32, 4); memcpy(out[nout] + 12, &slots[A][I].seq, 4); \
    nout++; } while (0)
#define FLUSH(FD) do { if (nout > 0) { int k = sendmmsg(FD, omsg, (unsigned)nout, 0); if (k > 0) sent += (uint64_t)k; nout = 0; } } while (0)

  int64_t start = now_ns(), end = start + (int64_t)(seconds * 1e9), last_sweep = start;
  for (int a = 0; a < nalloc; a++) {
    for (int i = 0; i < inflight; i++) { QUEUE(a, i); if (nout == BATCH) FLUSH(fds[a]); }
    FLUSH(fds[a]);
  }
  for (;;) {
    int64_t t = now_ns();
    if (t >= end) break;
    int n = poll(pfd, (nfds_t)nalloc + 1, 20);
    if (n < 0 && errno != EINTR) { perror("poll"); return 1; }
    /* The peer echoes every datagram to where it came from (the relayed address). */
    if (pfd[nalloc].revents & POLLIN) {
      for (int round = 0; round < 16; round++) {
        for (int i = 0; i < BATCH; i++) { imsg[i].msg_hdr.msg_name = &from[i]; imsg[i].msg_hdr.msg_namelen = sizeof from[i]; iiov[i].iov_len = sizeof in[i]; }
        int k = recvmmsg(peer, imsg, BATCH, MSG_DONTWAIT, NULL);
        if (k <= 0) break;
        for (int i = 0; i < k; i++) iiov[i].iov_len = imsg[i].msg_len;
        int s = sendmmsg(peer, imsg, (unsigned)k, 0);
        if (s > 0) echoed += (uint64_t)s;
        for (int i = 0; i < BATCH; i++) iiov[i].iov_len = sizeof in[i];
      }
    }
    for (int a = 0; a < nalloc; a++) {
      if (!(pfd[a].revents & POLLIN)) continue;
      for (int i = 0; i < BATCH; i++) { imsg[i].msg_hdr.msg_name = NULL; imsg[i].msg_hdr.msg_namelen = 0; }
      int k = recvmmsg(fds[a], imsg, BATCH, MSG_DONTWAIT, NULL);
      for (int j = 0; j < k; j++) {
        const uint8_t *d = in[j];
        uint32_t aa, ii, q;
        if (imsg[j].msg_len < 16 || d[0] != 0x40 || d[1] != 0x00) { bad++; continue; }
        memcpy(&aa, d + 4, 4); memcpy(&ii, d + 8, 4); memcpy(&q, d + 12, 4);
        if ((int)aa != a || ii >= (uint32_t)inflight || slots[a][ii].seq != q) { bad++; continue; }
        received++;
        QUEUE(a, (int)ii);
      }
      FLUSH(fds[a]);
    }
    if (t - last_sweep > 50000000LL) {
      last_sweep = t;
      for (int a = 0; a < nalloc; a++) {
        for (int i = 0; i < inflight; i++) if (t - slots[a][i].sent > LOSS_NS) { lost++; QUEUE(a, i); if (nout == BATCH) FLUSH(fds[a]); }
        FLUSH(fds[a]);
      }
    }
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  printf("{\"allocations\":%d,\"setupSeconds\":%.3f,\"sent\":%llu,\"received\":%llu,\"echoed\":%llu,\"lost\":%llu,\"bad\":%llu,\"seconds\":%.3f,\"echoesPerSecond\":%.1f,\"relayedPacketsPerSecond\":%.1f}\n",
         nalloc, setup_s, (unsigned long long)sent, (unsigned long long)received, (unsigned long long)echoed, (unsigned long long)lost,
         (unsigned long long)bad, elapsed, (double)received / elapsed, 2.0 * (double)received / elapsed);
  return 0;
}
