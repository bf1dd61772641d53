/*
 * natkit_udp — The fast path's send queue: datagrams the relay's fast path (udp_fast.c) forwards, in both directions,
 * are copied here and sent together at the end of the event-loop iteration (a uv_check handle, after the poll phase
 * has run every readable socket), or earlier when JS flushes its own sends (so a flow's datagrams never overtake each
 * other), when a socket closes, or when the queue is full. See udp_batch.h for the design.
 *
 * Why: on Linux nearly all of the relay's CPU is the kernel's per-datagram work (on loopback the sender's syscall
 * also runs the receiver's delivery). Holding the datagrams of many receive batches lets the flush
 *   - send each socket's datagrams with one sendmmsg, and
 *   - send a run of equal-size datagrams from one socket to one destination as ONE UDP GSO message (UDP_SEGMENT,
 *     Linux 4.18+): the kernel routes it, builds it and walks the IP output path once, and cuts it into the
 *     datagrams at the last moment (the NIC, the driver, or the receiving socket on loopback). The datagrams on the
 *     wire are the same: same sizes, same order, same addresses, each with its own UDP header and checksum. The last
 *     datagram of a run may be shorter (the kernel's rule); a run is at most GSO_MAX_SEGS datagrams and GSO_MAX_BYTES.
 * A socket the kernel refuses GSO on (EIO: a device without checksum offload; getsockopt UDP_SEGMENT unsupported)
 * sends one datagram per message from then on; a GSO message refused for its size (EINVAL, EMSGSIZE: segments larger
 * than the path MTU allows) is sent again datagram by datagram, and runs of that size or larger are not tried again
 * on that socket. Order is kept per destination (the order datagrams to one address and port were queued); datagrams
 * to different destinations may leave in another order, as from different sockets.
 */
#include "udp_batch.h"
#include <netinet/udp.h>

#define FLOW_SLOTS (PEND_MAX * 2) /* open-addressing table of the destinations of one flush (power of two) */
_Static_assert((FLOW_SLOTS & (FLOW_SLOTS - 1)) == 0, "FLOW_SLOTS must be a power of two");

/* One queued datagram: its bytes in buf, the next datagram to the same destination. */
typedef struct {
  uint32_t off, len;
  int32_t next;
} pend_t;

/* One destination (sending socket, address, port) of this flush: its datagrams in order, the socket's next one. */
typedef struct {
  int32_t sock;
  uint8_t addr[16];
  uint16_t port;
  int32_t head, tail;
  int32_t next;    /* next destination of the same socket */
  int32_t slot;    /* its slot in the hash table, cleared at the flush */
  struct sockaddr_storage sa;
  socklen_t salen;
} flow_t;

/* One message of a socket's sendmmsg: a single datagram, or a GSO run of `segs` datagrams from entry `first`. */
typedef struct {
  int32_t flow;
  int32_t first;
  int32_t segs;
  uint32_t seg_size; /* 0: not GSO */
} out_msg_t;

struct pending {
  uint8_t *buf;   /* PEND_BYTES */
  size_t used;
  int count, nflows, ndirty;
  pend_t ent[PEND_MAX];
  flow_t flow[PEND_MAX];
  int32_t slots[FLOW_SLOTS]; /* flow index + 1; 0: empty */
  int32_t dirty[PEND_MAX];   /* ids of the sockets with datagrams queued, in first-queued order */
  /* Flush scratch: one socket's messages. */
  struct mmsghdr msgs[PEND_MAX];
  out_msg_t info[PEND_MAX];
  struct iovec iov[PEND_MAX];
  union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } ctl[PEND_MAX];
  int flushing;
};

static uint32_t flow_hash (int32_t sock, const uint8_t addr[16], uint16_t port) {
  uint32_t w[4];
  memcpy(w, addr, 16);
  uint32_t h = (uint32_t)sock * 0x9e3779b1u ^ port;
  for (int i = 0; i < 4; i++) { h ^= w[i]; h *= 0x85ebca6bu; h ^= h >> 13; }
  return h;
}

static void on_check (uv_check_t *h) {
  shared_t *sh = (shared_t *)h->data;
  if (sh != NULL) fast_flush_pending(sh);
}

/* Set up the queue and its check handle on first use; 1 when usable. */
int pending_ready (shared_t *sh, sock_t *any) {
  if (sh->pending != NULL) return 1;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(any->env, &loop) != napi_ok) return 0;
  struct pending *p = calloc(1, sizeof *p);
  uv_check_t *check = malloc(sizeof *check);
  uint8_t *buf = malloc(PEND_BYTES);
  if (p == NULL || check == NULL || buf == NULL || uv_check_init(loop, check) != 0) {
    free(p); free(check); free(buf);
    return 0;
  }
  p->buf = buf;
  check->data = sh;
  uv_check_start(check, on_check);
  uv_unref((uv_handle_t *)check); /* never keeps the process alive */
  sh->pending = p;
  sh->pcheck = check;
  return 1;
}

void pending_free (shared_t *sh) {
  if (sh->pending != NULL) free(sh->pending->buf);
  free(sh->pending);
  sh->pending = NULL;
}

/*
 * Queue one datagram (hdr, then data) from `out` to addr/port (the 16-byte key form). 1 when queued; 0 when it
 * cannot be (no queue, an address `out`'s family cannot reach, too big), and the caller leaves the datagram to JS.
 */
int pending_add (shared_t *sh, sock_t *out, const uint8_t addr[16], uint16_t port, const uint8_t *hdr, size_t hlen,
                 const uint8_t *data, size_t len) {
  struct pending *p = sh->pending;
  size_t bytes = hlen + len;
  if (p == NULL || bytes > PEND_BYTES || p->flushing) return 0;
  if (p->count == PEND_MAX || p->used + bytes > PEND_BYTES) fast_flush_pending(sh);
  /* Its destination in this flush, created on its first datagram. */
  uint32_t mask = FLOW_SLOTS - 1, h = flow_hash(out->id, addr, port) & mask;
  int32_t f = -1;
  while (p->slots[h] != 0) {
    flow_t *c = &p->flow[p->slots[h] - 1];
    if (c->sock == out->id && c->port == port && memcmp(c->addr, addr, 16) == 0) { f = p->slots[h] - 1; break; }
    h = (h + 1) & mask;
  }
  if (f < 0) {
    flow_t *c = &p->flow[p->nflows];
    c->salen = fast_dest_addr(out, addr, port, &c->sa);
    if (c->salen == 0) return 0;
    f = p->nflows++;
    c->sock = out->id;
    memcpy(c->addr, addr, 16);
    c->port = port;
    c->head = c->tail = -1;
    c->next = -1;
    c->slot = (int32_t)h;
    p->slots[h] = f + 1;
    if (!out->pdirty) {
      out->pdirty = 1;
      out->pf_head = out->pf_tail = -1;
      p->dirty[p->ndirty++] = out->id;
    }
    if (out->pf_tail < 0) out->pf_head = f; else p->flow[out->pf_tail].next = f;
    out->pf_tail = f;
  }
  int32_t e = p->count++;
  uint8_t *d = p->buf + p->used;
  if (hlen > 0) memcpy(d, hdr, hlen);
  memcpy(d + hlen, data, len);
  p->ent[e].off = (uint32_t)p->used;
  p->ent[e].len = (uint32_t)bytes;
  p->ent[e].next = -1;
  p->used += (bytes + 7) & ~(size_t)7;
  flow_t *c = &p->flow[f];
  if (c->tail < 0) c->head = e; else p->ent[c->tail].next = e;
  c->tail = e;
  return 1;
}

/* Send the datagrams of message m (a GSO run the kernel refused) one per message. */
static void send_singly (struct pending *p, sock_t *s, const flow_t *fl, const out_msg_t *m) {
  struct mmsghdr one[GSO_MAX_SEGS];
  struct iovec iov[GSO_MAX_SEGS];
  int k = 0;
  for (int32_t e = m->first; e >= 0 && k < m->segs; e = p->ent[e].next, k++) {
    iov[k].iov_base = p->buf + p->ent[e].off;
    iov[k].iov_len = p->ent[e].len;
    memset(&one[k], 0, sizeof one[k]);
    one[k].msg_hdr.msg_name = (void *)&fl->sa;
    one[k].msg_hdr.msg_namelen = fl->salen;
    one[k].msg_hdr.msg_iov = &iov[k];
    one[k].msg_hdr.msg_iovlen = 1;
  }
  send_counted(s, one, k);
}

/* Build socket s's messages from its destinations' runs, and send them; every datagram counted once. */
static void flush_socket (struct pending *p, sock_t *s) {
  int n = 0, iv = 0;
  const int gso = s->shared->gso && !s->gso_off;
  for (int32_t f = s->pf_head; f >= 0; f = p->flow[f].next) {
    flow_t *fl = &p->flow[f];
    int32_t e = fl->head;
    while (e >= 0) {
      /* A run: datagrams of one size, then at most one shorter; bounded in count and bytes. */
      uint32_t size = p->ent[e].len;
      int32_t first = e, segs = 0;
      uint32_t total = 0;
      if (gso && (s->gso_fail_size == 0 || size < s->gso_fail_size)) {
        while (e >= 0 && segs < GSO_MAX_SEGS && total + p->ent[e].len <= GSO_MAX_BYTES && p->ent[e].len <= size && p->ent[e].len > 0) {
          int last = p->ent[e].len < size;
          p->iov[iv + segs].iov_base = p->buf + p->ent[e].off;
          p->iov[iv + segs].iov_len = p->ent[e].len;
          total += p->ent[e].len;
          segs++;
          e = p->ent[e].next;
          if (last) break;
        }
      }
      if (segs == 0) {
        /* One datagram on its own (GSO off, or an empty datagram, which GSO cannot carry). */
        p->iov[iv].iov_base = p->buf + p->ent[e].off;
        p->iov[iv].iov_len = p->ent[e].len;
        segs = 1;
        e = p->ent[e].next;
      }
      struct msghdr *mh = &p->msgs[n].msg_hdr;
      mh->msg_name = &fl->sa;
      mh->msg_namelen = fl->salen;
      mh->msg_iov = &p->iov[iv];
      mh->msg_iovlen = (size_t)segs;
      mh->msg_flags = 0;
      p->info[n].flow = f;
      p->info[n].first = first;
      p->info[n].segs = segs;
      p->info[n].seg_size = 0;
      if (segs > 1) {
        struct cmsghdr *cm = (struct cmsghdr *)p->ctl[n].buf;
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = (uint16_t)size;
        memcpy(CMSG_DATA(cm), &seg, sizeof seg);
        mh->msg_control = cm;
        mh->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        p->info[n].seg_size = size;
      } else {
        mh->msg_control = NULL;
        mh->msg_controllen = 0;
      }
      iv += segs;
      n++;
    }
  }
  int i = 0;
  while (i < n) {
    int r = sendmmsg(s->fd, p->msgs + i, (unsigned int)(n - i), MSG_DONTWAIT);
    s->tx_batches++;
    if (r > 0) {
      for (int j = i; j < i + r; j++) {
        s->tx_packets += p->info[j].segs;
        if (p->info[j].seg_size != 0) { s->tx_gso_messages++; s->tx_gso_datagrams += p->info[j].segs; }
      }
      i += r;
      continue;
    }
    int err = r == 0 ? EAGAIN : errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      for (int j = i; j < n; j++) s->tx_drops += p->info[j].segs;
      break;
    }
    const out_msg_t *m = &p->info[i];
    if (m->seg_size != 0) {
      /* The kernel refused this GSO message: EIO (no checksum offload on the route's device) for good on this socket;
       * EINVAL or EMSGSIZE (segments too large for the MTU) for this size and up; anything else (a firewall's EPERM…)
       * is the datagrams' own fate. Send them one by one: each then fails or leaves as it would have without GSO. */
      if (err == EIO || err == ENOPROTOOPT || err == EOPNOTSUPP) s->gso_off = 1;
      else if ((err == EINVAL || err == EMSGSIZE) && (s->gso_fail_size == 0 || m->seg_size < s->gso_fail_size)) s->gso_fail_size = m->seg_size;
      send_singly(p, s, &p->flow[m->flow], m);
    } else {
      /* This datagram failed (EMSGSIZE, ENETUNREACH, EACCES, ...): count it and go on with the rest. */
      s->tx_errors++;
      s->last_tx_errno = err;
    }
    i++;
  }
}

/* Send everything queued: one sendmmsg run per socket (sockets in the order they first queued); closed ones dropped. */
void fast_flush_pending (shared_t *sh) {
  struct pending *p = sh->pending;
  if (p == NULL || p->count == 0 || p->flushing) return;
  p->flushing = 1;
  for (int d = 0; d < p->ndirty; d++) {
    int32_t id = p->dirty[d];
    sock_t *s = id > 0 && id < sh->cap ? sh->socks[id] : NULL;
    if (s == NULL || !s->pdirty) continue;
    if (!s->closing) flush_socket(p, s);
    s->pdirty = 0;
  }
  for (int f = 0; f < p->nflows; f++) p->slots[p->flow[f].slot] = 0;
  p->count = 0;
  p->nflows = 0;
  p->ndirty = 0;
  p->used = 0;
  p->flushing = 0;
}

/* setGso(on) -> the previous setting: allow UDP GSO for the fast path's sends in this environment (default: on
 * unless NATKIT_UDP_GSO=0). What is queued is sent first, under the previous setting. */
napi_value js_set_gso (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  bool on;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) { napi_throw_type_error(env, NULL, "setGso(boolean)"); return NULL; }
  shared_t *sh = NULL;
  CHECK(napi_get_instance_data(env, (void **)&sh));
  bool was = sh != NULL && sh->gso;
  if (sh != NULL) {
    fast_flush_pending(sh);
    sh->gso = on ? 1 : 0;
  }
  CHECK(napi_get_boolean(env, was, &out));
  return out;
}
