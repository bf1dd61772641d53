/* natkit_udp — Send: flush() sends the datagrams JS queued in the shared send buffer with sendmmsg, one run per socket. See udp_batch.h for the design and layouts. */
#include "udp_batch.h"

/* Fill the sockaddr and iovec of shared send slot k for socket s from metadata m; 0 on success, else an errno. */
int fill_dest (shared_t *sh, sock_t *s, int k, const int32_t *m) {
  int32_t off = m[0], len = m[1], port = m[2], fam = m[3];
  if (off < 0 || len < 0 || len > SEND_BYTES || off > SEND_BYTES - len || port <= 0 || port > 65535) return EINVAL;
  const uint8_t *addr = (const uint8_t *)(m + 4);
  struct sockaddr_storage *ss = &sh->saddr[k];
  static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
  memset(ss, 0, sizeof *ss);
  if (s->family == AF_INET6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (fam == 6) memcpy(&a6->sin6_addr, addr, 16);
    else if (fam == 4) { memcpy(&a6->sin6_addr, mapped_prefix, 12); memcpy((uint8_t *)&a6->sin6_addr + 12, addr, 4); }
    else return EAFNOSUPPORT;
    sh->smsg[k].msg_hdr.msg_namelen = sizeof *a6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (fam == 4) memcpy(&a4->sin_addr, addr, 4);
    else if (fam == 6 && memcmp(addr, mapped_prefix, 12) == 0) memcpy(&a4->sin_addr, addr + 12, 4);
    else return EAFNOSUPPORT;
    sh->smsg[k].msg_hdr.msg_namelen = sizeof *a4;
  }
  sh->siov[k].iov_base = sh->send + off;
  sh->siov[k].iov_len = (size_t)len;
  return 0;
}

/*
 * Send msgs[0..n-1] on s with sendmmsg, counting batches, packets, drops and errors into s's stats: EAGAIN/ENOBUFS
 * drop the rest; any other failure (EMSGSIZE, ENETUNREACH, EACCES, ...) counts that datagram as an error and goes on
 * with the rest. Returns the errno of the first such failure, or 0.
 */
int send_counted (sock_t *s, struct mmsghdr *msgs, int n) {
  int first_err = 0;
  int i = 0;
  while (i < n) {
    int r = sendmmsg(s->fd, msgs + i, (unsigned int)(n - i), MSG_DONTWAIT);
    s->tx_batches++;
    if (r > 0) { s->tx_packets += r; i += r; continue; }
    int err = r == 0 ? EAGAIN : errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) { s->tx_drops += n - i; break; }
    s->tx_errors++;
    s->last_tx_errno = err;
    if (first_err == 0) first_err = err;
    i++;
  }
  return first_err;
}

/* Send shared slots 0..n-1 on s; the errno of the first failure other than EAGAIN, or 0. */
int send_slots (shared_t *sh, sock_t *s, int n) {
  return send_counted(s, sh->smsg, n);
}

/*
 * flush(count) -> 0, or the errno of the first failure other than EAGAIN (those are counted as drops). Sends the
 * first `count` datagrams of the shared send buffer: one sendmmsg run per socket, each socket's datagrams in queue
 * order. Datagrams of a socket that has been closed are dropped.
 */
napi_value js_flush (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "flush(count)"); return NULL; }
  shared_t *sh = NULL;
  CHECK(napi_get_instance_data(env, (void **)&sh));
  int32_t count;
  if (!get_int(env, argv[0], &count) || count < 0 || count > BATCH || (count > 0 && (sh == NULL || !sh->ready))) {
    napi_throw_range_error(env, NULL, "flush: count out of range");
    return NULL;
  }
  /* The fast path's queued datagrams go first, so that a flow relayed partly in C and partly in JS keeps its order. */
  if (sh != NULL) fast_flush_pending(sh);
  int first_err = 0;
  uint64_t done = 0; /* bit i: datagram i handled (BATCH <= 64) */
  for (int start = 0; start < count; start++) {
    if ((done >> start) & 1) continue;
    int32_t id = sh->send_meta[start * SEND_META + 8];
    sock_t *s = id > 0 && id < sh->cap ? sh->socks[id] : NULL;
    /* Gather this socket's datagrams, in order, into the shared mmsghdr slots; invalid ones are errors, not sent. */
    int n = 0;
    for (int i = start; i < count; i++) {
      if (((done >> i) & 1) || sh->send_meta[i * SEND_META + 8] != id) continue;
      done |= (uint64_t)1 << i;
      if (s == NULL || s->closing) continue;
      int err = fill_dest(sh, s, n, sh->send_meta + i * SEND_META);
      if (err != 0) { s->tx_errors++; if (first_err == 0) first_err = err; continue; }
      n++;
    }
    if (n > 0) {
      int err = send_slots(sh, s, n);
      if (first_err == 0) first_err = err;
    }
  }
  CHECK(napi_create_int32(env, first_err, &out));
  return out;
}
