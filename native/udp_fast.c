/*
 * natkit_udp — The relay's fast path for established channels (RFC 8656 §12.6, §12.7): a forwarding table the JS relay
 * installs entries in, and the per-batch forwarding that uses it, so that the common relayed datagram never enters JS.
 * See udp_batch.h for the design and layouts.
 *
 * An entry is keyed by (receiving socket id, remote address, remote port, channel) and says where to send:
 *   forward  (listener socket, client, channel N) -> (relay socket, peer):    ChannelData N from the client: the
 *            payload goes to the peer from the relay socket (§12.6);
 *   reverse  (relay socket, peer, 0)             -> (listener socket, client, channel N): a datagram from the peer
 *            goes to the client as ChannelData N (§12.7, framed as §12.4; no padding over UDP, §12.5).
 * JS owns correctness: it installs a pair only when it would forward the same packets itself (active allocation,
 * channel bound, permission installed, peer allowed, no bandwidth cap) and gives it a time-to-live (the nearest of the
 * channel, permission and allocation expiries); past it the entry is ignored and deleted, and the datagram goes to JS
 * as before, which refreshes the entry or drops the datagram. JS removes entries when what they rest on changes
 * (allocation deleted, policy reloaded); closing a socket removes every entry naming it, and each entry also checks the
 * sockets' generations, so a reused socket id never matches an old entry.
 *
 * Everything not matched (STUN, unknown channel, Data/Send indications, malformed ChannelData, expired) is left in the
 * batch for JS with its metadata untouched. Matched datagrams are copied to the send queue (udp_pending.c: sent at the
 * end of the event-loop iteration, as UDP GSO runs where they can be) and marked (length FAST_DONE); JS skips them.
 * Forwarded packets and payload bytes are counted on the relay socket (fast_c2p_*, fast_p2c_*), read by takeFast().
 */
#include "udp_batch.h"
#include <time.h>

#define FAST_MIN_BUCKETS 1024

/* Monotonic milliseconds (coarse clock: a few ms of resolution is plenty for expiries of minutes). */
static int64_t mono_ms (void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t key_hash (const fast_key_t *k) {
  /* FNV-1a over the key bytes; the key has no padding (see the static assert in udp_batch.h). */
  const uint8_t *p = (const uint8_t *)k;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < sizeof *k; i++) { h ^= p[i]; h *= 16777619u; }
  return h;
}

/* Normalise a received sockaddr to the 16-byte key form (IPv4 as ::ffff:a.b.c.d); 0 when not usable. */
static int addr_key (const struct sockaddr_storage *a, socklen_t alen, uint8_t out[16], uint16_t *port) {
  static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
  if (a->ss_family == AF_INET && alen >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
    memcpy(out, mapped_prefix, 12);
    memcpy(out + 12, &a4->sin_addr, 4);
    *port = ntohs(a4->sin_port);
    return 1;
  }
  if (a->ss_family == AF_INET6 && alen >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
    memcpy(out, &a6->sin6_addr, 16);
    *port = ntohs(a6->sin6_port);
    return 1;
  }
  return 0;
}

static fast_entry_t **find_slot (shared_t *sh, const fast_key_t *k) {
  if (sh->fast_buckets == NULL) return NULL;
  fast_entry_t **pp = &sh->fast_buckets[key_hash(k) & (sh->fast_nbuckets - 1)];
  while (*pp != NULL && memcmp(&(*pp)->key, k, sizeof *k) != 0) pp = &(*pp)->next;
  return pp;
}

static void unlink_entry (shared_t *sh, fast_entry_t **pp) {
  fast_entry_t *e = *pp;
  *pp = e->next;
  free(e);
  sh->fast_count--;
}

static int grow (shared_t *sh) {
  uint32_t n = sh->fast_nbuckets == 0 ? FAST_MIN_BUCKETS : sh->fast_nbuckets * 2;
  fast_entry_t **b = calloc(n, sizeof *b);
  if (b == NULL) return 0;
  for (uint32_t i = 0; i < sh->fast_nbuckets; i++) {
    fast_entry_t *e = sh->fast_buckets[i];
    while (e != NULL) {
      fast_entry_t *next = e->next;
      uint32_t j = key_hash(&e->key) & (n - 1);
      e->next = b[j];
      b[j] = e;
      e = next;
    }
  }
  free(sh->fast_buckets);
  sh->fast_buckets = b;
  sh->fast_nbuckets = n;
  return 1;
}

/* Insert or replace an entry; 0 when out of memory. */
static int put (shared_t *sh, const fast_key_t *k, const fast_entry_t *v) {
  if ((sh->fast_count + 1) * 2 > (uint64_t)sh->fast_nbuckets * 3 && !grow(sh) && sh->fast_buckets == NULL) return 0;
  fast_entry_t **pp = find_slot(sh, k);
  if (*pp != NULL) {
    fast_entry_t *next = (*pp)->next;
    **pp = *v;
    (*pp)->key = *k;
    (*pp)->next = next;
    return 1;
  }
  fast_entry_t *e = malloc(sizeof *e);
  if (e == NULL) return 0;
  *e = *v;
  e->key = *k;
  e->next = NULL;
  *pp = e;
  sh->fast_count++;
  return 1;
}

/* Remove every entry that names socket id `id` (receiving or sending). Called when a socket closes. */
void fast_purge_socket (shared_t *sh, int32_t id) {
  if (sh->fast_count == 0) return;
  for (uint32_t i = 0; i < sh->fast_nbuckets; i++) {
    fast_entry_t **pp = &sh->fast_buckets[i];
    while (*pp != NULL) {
      if ((*pp)->key.sock == id || (*pp)->out_sock == id) unlink_entry(sh, pp);
      else pp = &(*pp)->next;
    }
  }
}

void fast_free_all (shared_t *sh) {
  for (uint32_t i = 0; i < sh->fast_nbuckets; i++) {
    fast_entry_t *e = sh->fast_buckets[i];
    while (e != NULL) { fast_entry_t *next = e->next; free(e); e = next; }
  }
  free(sh->fast_buckets);
  sh->fast_buckets = NULL;
  sh->fast_nbuckets = 0;
  sh->fast_count = 0;
}

/* An open socket by id with the given generation, else NULL. */
static sock_t *live (shared_t *sh, int32_t id, uint32_t gen) {
  if (id <= 0 || id >= sh->cap) return NULL;
  sock_t *s = sh->socks[id];
  return s != NULL && !s->closing && s->gen == gen ? s : NULL;
}

/* Fill sockaddr `ss` for sending from `out` to the 16-byte key address; the length, or 0 when the family cannot. */
socklen_t fast_dest_addr (const sock_t *out, const uint8_t addr[16], uint16_t port, struct sockaddr_storage *ss) {
  static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
  memset(ss, 0, sizeof(struct sockaddr_in6));
  if (out->family == AF_INET6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    memcpy(&a6->sin6_addr, addr, 16);
    return sizeof *a6;
  }
  if (memcmp(addr, mapped_prefix, 12) != 0) return 0;
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  a4->sin_family = AF_INET;
  a4->sin_port = htons(port);
  memcpy(&a4->sin_addr, addr + 12, 4);
  return sizeof *a4;
}

/*
 * Forward what the table knows among the n datagrams just received on s (their metadata already written): each is
 * copied to the pending queue (udp_pending.c), sent at the end of this event-loop iteration. Forwarded datagrams get
 * length FAST_DONE in the metadata. Returns how many were forwarded. Never touches JS.
 */
int fast_forward (shared_t *sh, sock_t *s, int n) {
  if (sh->fast_count == 0 || n <= 0 || !pending_ready(sh, s)) return 0;
  int64_t now = -1;
  int forwarded = 0;
  for (int i = 0; i < n; i++) {
    int32_t *m = sh->recv_meta + i * META;
    int32_t len = m[0];
    if (len < 0) continue;
    const uint8_t *p = sh->recv + (size_t)i * SLOT;
    fast_key_t k;
    memset(&k, 0, sizeof k);
    k.sock = s->id;
    if (!addr_key(&sh->raddr[i], sh->rmsg[i].msg_hdr.msg_namelen, k.addr, &k.port)) continue;
    /* A ChannelData message from a client? RFC 8656 §12.4: 2 bytes channel, 2 bytes length, then the data; over UDP
     * the datagram may carry up to 3 bytes of padding after it (§12.5), anything else is malformed (left to JS).
     * Its forward entry is keyed by the channel; a datagram from a peer (any bytes) by channel 0. */
    uint32_t size = 0;
    fast_entry_t **pp = NULL;
    if (len >= 4 && p[0] >= 0x40 && p[0] <= 0x7f) {
      size = ((uint32_t)p[2] << 8) | p[3];
      if (4 + size <= (uint32_t)len && (uint32_t)len - 4 - size <= 3) {
        k.channel = (uint16_t)(((uint32_t)p[0] << 8) | p[1]);
        pp = find_slot(sh, &k);
        if (pp != NULL && *pp == NULL) pp = NULL;
        k.channel = 0;
      }
    }
    if (pp == NULL) pp = find_slot(sh, &k);
    if (pp == NULL || *pp == NULL) continue;
    fast_entry_t *e = *pp;
    if (now < 0) now = mono_ms();
    sock_t *out = live(sh, e->out_sock, e->out_gen);
    if (e->expires <= now || out == NULL || e->in_gen != s->gen) { unlink_entry(sh, pp); continue; }
    if (!e->reverse) {
      /* §12.6: relay the data to the peer (the payload only, without header and padding). */
      if (!pending_add(sh, out, e->addr, e->port, NULL, 0, p + 4, size)) continue;
      out->fast_c2p_packets++;
      out->fast_c2p_bytes += size;
    } else {
      /* §12.7: to the client as ChannelData on the bound channel (framed as §12.4, no padding over UDP, §12.5); a
       * datagram too big for a ChannelData message is left to JS. */
      if (len > 0xffff - 4) continue;
      const uint8_t h[4] = { (uint8_t)(e->channel >> 8), (uint8_t)e->channel, (uint8_t)((uint32_t)len >> 8), (uint8_t)len };
      if (!pending_add(sh, out, e->addr, e->port, h, 4, p, (size_t)len)) continue;
      s->fast_p2c_packets++;
      s->fast_p2c_bytes += (double)len;
    }
    m[0] = FAST_DONE;
    forwarded++;
  }
  return forwarded;
}

/* Parse an IP literal (IPv4, IPv6, or IPv4-mapped IPv6) into the 16-byte key form. */
static int parse_ip (napi_env env, napi_value v, uint8_t out[16]) {
  char text[64];
  size_t len;
  if (napi_get_value_string_latin1(env, v, text, sizeof text, &len) != napi_ok || len == 0 || len >= sizeof text - 1) return 0;
  struct in_addr a4;
  if (inet_pton(AF_INET, text, &a4) == 1) {
    static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    memcpy(out, mapped_prefix, 12);
    memcpy(out + 12, &a4, 4);
    return 1;
  }
  return inet_pton(AF_INET6, text, out) == 1;
}

/*
 * fastInstall(listener, clientIp, clientPort, channel, relay, peerIp, peerPort, ttlMs) -> boolean: install (or
 * refresh) the forward and the reverse entry of one channel binding, valid for ttlMs from now. False when the
 * arguments do not make a usable pair (closed socket, an address the socket's family cannot reach) or memory is out.
 */
napi_value js_fast_install (napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) { napi_throw_type_error(env, NULL, "fastInstall(listener, clientIp, clientPort, channel, relay, peerIp, peerPort, ttlMs)"); return NULL; }
  shared_t *sh = NULL;
  CHECK(napi_get_instance_data(env, (void **)&sh));
  sock_t *ls = get_sock(env, argv[0]);
  if (ls == NULL) return NULL;
  sock_t *rs = get_sock(env, argv[4]);
  if (rs == NULL) return NULL;
  int32_t cport, channel, pport;
  double ttl;
  uint8_t caddr[16], paddr[16];
  if (!get_int(env, argv[2], &cport) || !get_int(env, argv[3], &channel) || !get_int(env, argv[6], &pport) ||
      napi_get_value_double(env, argv[7], &ttl) != napi_ok || !parse_ip(env, argv[1], caddr) || !parse_ip(env, argv[5], paddr) ||
      cport <= 0 || cport > 65535 || pport <= 0 || pport > 65535 || channel < 0x4000 || channel > 0x7fff || !(ttl >= 0)) {
    napi_throw_type_error(env, NULL, "fastInstall: bad arguments");
    return NULL;
  }
  bool ok = false;
  struct sockaddr_storage probe;
  if (sh != NULL && !ls->closing && !rs->closing && ls->id > 0 && rs->id > 0 && ttl > 0 &&
      fast_dest_addr(ls, caddr, (uint16_t)cport, &probe) != 0 && fast_dest_addr(rs, paddr, (uint16_t)pport, &probe) != 0) {
    if (ttl > 1e12) ttl = 1e12;
    int64_t expires = mono_ms() + (int64_t)ttl;
    fast_key_t k;
    fast_entry_t v;
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    k.sock = ls->id; memcpy(k.addr, caddr, 16); k.port = (uint16_t)cport; k.channel = (uint16_t)channel;
    v.reverse = 0; v.in_gen = ls->gen; v.out_sock = rs->id; v.out_gen = rs->gen;
    memcpy(v.addr, paddr, 16); v.port = (uint16_t)pport; v.channel = 0; v.expires = expires;
    ok = put(sh, &k, &v);
    memset(&k, 0, sizeof k);
    k.sock = rs->id; memcpy(k.addr, paddr, 16); k.port = (uint16_t)pport; k.channel = 0;
    v.reverse = 1; v.in_gen = rs->gen; v.out_sock = ls->id; v.out_gen = ls->gen;
    memcpy(v.addr, caddr, 16); v.port = (uint16_t)cport; v.channel = (uint16_t)channel;
    ok = ok && put(sh, &k, &v);
  }
  CHECK(napi_get_boolean(env, ok, &out));
  return out;
}

/* fastPurge(handle): remove every entry that names this socket (as receiver or sender). */
napi_value js_fast_purge (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "fastPurge(handle)"); return NULL; }
  sock_t *s = get_sock(env, argv[0]);
  if (s == NULL) return NULL;
  if (!s->closing && s->id > 0) fast_purge_socket(s->shared, s->id);
  return NULL;
}

/* fastCount() -> entries in this environment's table (forward and reverse). */
napi_value js_fast_count (napi_env env, napi_callback_info info) {
  (void)info;
  shared_t *sh = NULL;
  napi_value out;
  CHECK(napi_get_instance_data(env, (void **)&sh));
  CHECK(napi_create_double(env, sh == NULL ? 0 : (double)sh->fast_count, &out));
  return out;
}

/*
 * takeFast(handle) -> [clientToPeerPackets, clientToPeerBytes, peerToClientPackets, peerToClientBytes]: what the fast
 * path relayed through this relay socket since the last call (then zeroed).
 */
napi_value js_take_fast (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "takeFast(handle)"); return NULL; }
  sock_t *s = get_sock(env, argv[0]);
  if (s == NULL) return NULL;
  const double values[4] = { s->fast_c2p_packets, s->fast_c2p_bytes, s->fast_p2c_packets, s->fast_p2c_bytes };
  CHECK(napi_create_array_with_length(env, 4, &out));
  for (uint32_t i = 0; i < 4; i++) {
    CHECK(napi_create_double(env, values[i], &v));
    CHECK(napi_set_element(env, out, i, v));
  }
  s->fast_c2p_packets = s->fast_c2p_bytes = s->fast_p2c_packets = s->fast_p2c_bytes = 0;
  return out;
}
