/*
 * natkit_udp: batched UDP datagram I/O for natkit (Linux), in plain N-API C.
 *
 * One socket = one non-blocking fd polled by a uv_poll_t on Node's main loop. When the fd is readable, recvmmsg()
 * fills up to BATCH datagrams into a receive ArrayBuffer shared with JS (one SLOT per datagram) and an Int32Array of
 * per-datagram metadata; then ONE JS call dispatches the whole batch. JS appends outgoing datagrams to a send buffer +
 * metadata and calls flush(), which sends them with sendmmsg(). The JS side is src/net/batch-udp.ts.
 *
 * The buffers and the mmsghdr arrays are shared by every socket of an N-API environment (one per process or worker),
 * not owned by each socket: batches are dispatched synchronously on the environment's one thread, so a socket's batch
 * has been handed to JS in full before the next recvmmsg (on any socket) overwrites the receive buffer, and the send
 * buffer is flushed by JS before control returns to the event loop. A socket itself is then a few hundred bytes. The
 * shared buffers are allocated on first use (first readable event, or first buffers() call from JS).
 *
 * Layouts (int32 words, native endian; address bytes are in network order, as in the sockaddr):
 *   receive meta, per datagram i, at i*META:      [length (-1: truncated, skip), port, family 4|6, 0, addr[16 bytes]]
 *   send meta,    per datagram i, at i*SEND_META: [offset in send buffer, length, port, family 4|6, addr[16 bytes],
 *                                                  socket id (the `id` open() returned), 0]
 * flush() sends each socket's datagrams in the order they were queued (datagrams of different sockets may be
 * reordered between sockets).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#define BATCH 64                 /* datagrams per recvmmsg/sendmmsg */
#define SLOT 65536               /* bytes per receive slot: any UDP payload (max 65527 on IPv6) fits */
#define META 8                   /* int32 words of metadata per datagram */
#define SEND_BYTES (256 * 1024)  /* shared send buffer; must hold at least one 65535-byte datagram */
#define MAX_BATCHES_PER_EVENT 16 /* recvmmsg rounds per readable event, so other handles get their turn */
#define SEND_META 10             /* int32 words of send metadata per datagram (META + socket id + padding) */

_Static_assert(BATCH <= 64, "flush() tracks a batch in a 64-bit mask");

typedef struct sock sock_t;

/* Per N-API environment: the buffers shared with JS, the mmsghdr arrays, and the socket id table for flush(). */
typedef struct {
  napi_env env;
  int ready; /* the buffers below exist */
  napi_ref recv_ab, recv_meta_ab, send_ab, send_meta_ab;
  uint8_t *recv;
  int32_t *recv_meta;
  uint8_t *send;
  int32_t *send_meta;
  struct mmsghdr rmsg[BATCH];
  struct iovec riov[BATCH];
  struct sockaddr_storage raddr[BATCH];
  struct mmsghdr smsg[BATCH];
  struct iovec siov[BATCH];
  struct sockaddr_storage saddr[BATCH];
  sock_t **socks;  /* socks[id] = the open socket with that id, or NULL; id 0 is never used */
  int32_t *free_ids;
  int32_t n_free, cap;
} shared_t;

struct sock {
  uv_poll_t poll;
  napi_env env;
  shared_t *shared;
  int32_t id;  /* index in shared->socks while open; 0 once closed */
  int fd;
  int family; /* AF_INET or AF_INET6 */
  int closing;       /* close() called (or env teardown): no more I/O, no more JS calls */
  int handle_closed; /* uv_close callback ran */
  int finalized;     /* the JS external was collected */
  int env_gone;      /* the N-API environment is being torn down: no more N-API calls */
  napi_ref callback, resource;
  napi_async_context async;
  double rx_packets, rx_batches, rx_truncated, rx_errors, tx_packets, tx_batches, tx_drops, tx_errors;
  int last_tx_errno;
};

#define CHECK(call)                                                                                                  \
  do {                                                                                                               \
    if ((call) != napi_ok) {                                                                                         \
      throw_last(env, #call);                                                                                        \
      return NULL;                                                                                                   \
    }                                                                                                                \
  } while (0)

static void throw_last (napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "natkit_udp: %s failed: %s", what,
           info != NULL && info->error_message != NULL ? info->error_message : "unknown N-API error");
  napi_throw_error(env, "ERR_NATKIT_NATIVE", msg);
}

/* Throw an Error like libuv's: code 'EADDRINUSE', message '<syscall> EADDRINUSE <detail>'. */
static void throw_errno (napi_env env, int err, const char *syscall, const char *detail) {
  const char *name = uv_err_name(-err);
  char msg[320];
  snprintf(msg, sizeof msg, "%s %s %s (%s)", syscall, name, detail, strerror(err));
  napi_throw_error(env, name, msg);
}

static void maybe_free (sock_t *s) {
  if (s->handle_closed && s->finalized) free(s);
}

static void release_refs (sock_t *s);

static void on_handle_closed (uv_handle_t *h) {
  sock_t *s = (sock_t *)h->data;
  /* JS references are released here, not in close(): close() may be called from a handler inside this socket's
   * own callback, which still uses the callback and the async context. */
  if (!s->env_gone) release_refs(s);
  s->handle_closed = 1;
  maybe_free(s);
}

static void on_finalize (napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  sock_t *s = (sock_t *)data;
  s->finalized = 1;
  maybe_free(s);
}

/* Stop polling and close the fd. Safe to call twice. JS references are released once the handle has closed. */
static void stop_io (sock_t *s) {
  if (s->closing) return;
  s->closing = 1;
  /* At env teardown the shared state may already be gone; nothing will flush then anyway. */
  if (!s->env_gone && s->id > 0) {
    shared_t *sh = s->shared;
    sh->socks[s->id] = NULL;
    sh->free_ids[sh->n_free++] = s->id;
  }
  s->id = 0;
  /* uv_close invalidates the fd in epoll synchronously, so closing the fd right after is safe. */
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
  close(s->fd);
  s->fd = -1;
}

static void on_env_cleanup (void *arg) {
  sock_t *s = (sock_t *)arg;
  s->env_gone = 1;
  stop_io(s);
}

static void release_refs (sock_t *s) {
  napi_env env = s->env;
  napi_ref *refs[] = { &s->callback, &s->resource };
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
    if (*refs[i] != NULL) napi_delete_reference(env, *refs[i]);
    *refs[i] = NULL;
  }
  if (s->async != NULL) napi_async_destroy(env, s->async);
  s->async = NULL;
}

static void report_error (sock_t *s, napi_value cb, napi_value self, int err) {
  napi_value arg, result;
  napi_create_int32(s->env, -err, &arg);
  if (napi_make_callback(s->env, s->async, self, cb, 1, &arg, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(s->env, &exc);
    napi_fatal_exception(s->env, exc);
  }
}

static napi_value make_ab (napi_env env, size_t bytes, void **data, napi_ref *ref) {
  napi_value ab;
  if (napi_create_arraybuffer(env, bytes, data, &ab) != napi_ok) return NULL;
  if (napi_create_reference(env, ab, 1, ref) != napi_ok) return NULL;
  return ab;
}

static void unmap_buffer (napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/*
 * The receive buffer (BATCH * SLOT = 4 MiB) and the send buffer are mmap()ed: pages are committed only when a datagram
 * touches them, so only as much of them is resident as the largest batch needed (a calloc of this size may come zeroed
 * from the heap, all resident). They are unmapped when JS has collected the ArrayBuffer. Where external buffers are not
 * allowed, V8 allocates them.
 */
static napi_value make_lazy_ab (napi_env env, size_t bytes, void **data, napi_ref *ref) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    napi_value ab;
    if (napi_create_external_arraybuffer(env, p, bytes, unmap_buffer, (void *)(uintptr_t)bytes, &ab) == napi_ok) {
      if (napi_create_reference(env, ab, 1, ref) != napi_ok) return NULL;
      *data = p;
      return ab;
    }
    munmap(p, bytes);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) { napi_value e; napi_get_and_clear_last_exception(env, &e); }
  }
  return make_ab(env, bytes, data, ref);
}


/* Create the environment's shared buffers on first use; 1 when they exist. May leave a JS exception pending. */
static int ensure_shared (napi_env env, shared_t *sh) {
  if (sh->ready) return 1;
  void *p;
  if (sh->recv == NULL) {
    if (make_lazy_ab(env, (size_t)BATCH * SLOT, &p, &sh->recv_ab) == NULL) return 0;
    sh->recv = p;
  }
  if (sh->recv_meta == NULL) {
    if (make_ab(env, (size_t)BATCH * META * 4, &p, &sh->recv_meta_ab) == NULL) return 0;
    sh->recv_meta = p;
  }
  if (sh->send == NULL) {
    if (make_lazy_ab(env, SEND_BYTES, &p, &sh->send_ab) == NULL) return 0;
    sh->send = p;
  }
  if (sh->send_meta == NULL) {
    if (make_ab(env, (size_t)BATCH * SEND_META * 4, &p, &sh->send_meta_ab) == NULL) return 0;
    sh->send_meta = p;
  }
  for (int i = 0; i < BATCH; i++) {
    sh->riov[i].iov_base = sh->recv + (size_t)i * SLOT;
    sh->riov[i].iov_len = SLOT;
    sh->rmsg[i].msg_hdr.msg_iov = &sh->riov[i];
    sh->rmsg[i].msg_hdr.msg_iovlen = 1;
    sh->rmsg[i].msg_hdr.msg_name = &sh->raddr[i];
    sh->smsg[i].msg_hdr.msg_iov = &sh->siov[i];
    sh->smsg[i].msg_hdr.msg_iovlen = 1;
    sh->smsg[i].msg_hdr.msg_name = &sh->saddr[i];
  }
  sh->ready = 1;
  return 1;
}

static void on_readable (uv_poll_t *h, int status, int events) {
  (void)events;
  sock_t *s = (sock_t *)h->data;
  if (s->closing) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, self;
  if (napi_get_reference_value(env, s->callback, &cb) != napi_ok ||
      napi_get_reference_value(env, s->resource, &self) != napi_ok) {
    napi_close_handle_scope(env, scope);
    return;
  }
  shared_t *sh = s->shared;
  if (!ensure_shared(env, sh)) {
    /* Out of memory: say so and stop polling rather than spin on a readable fd that cannot be read. */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) { napi_value e; napi_get_and_clear_last_exception(env, &e); }
    uv_poll_stop(&s->poll);
    s->rx_errors++;
    report_error(s, cb, self, ENOMEM);
    napi_close_handle_scope(env, scope);
    return;
  }
  if (status < 0) {
    /* libuv stops a poll handle on POLLERR. A pending socket error is cleared by the next recvmmsg (which returns it),
     * so report it, poll again and read on: the socket must not go deaf. */
    report_error(s, cb, self, -status);
    if (s->closing || uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0) {
      napi_close_handle_scope(env, scope);
      return;
    }
  }
  for (int round = 0; round < MAX_BATCHES_PER_EVENT && !s->closing; round++) {
    for (int i = 0; i < BATCH; i++) {
      sh->rmsg[i].msg_hdr.msg_namelen = sizeof sh->raddr[i];
      sh->rmsg[i].msg_hdr.msg_flags = 0;
      sh->riov[i].iov_len = SLOT;
    }
    int n = recvmmsg(s->fd, sh->rmsg, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      /* ICMP errors queued on the socket (ECONNREFUSED etc.) surface here; report and keep polling. */
      s->rx_errors++;
      report_error(s, cb, self, err);
      break;
    }
    if (n == 0) break;
    s->rx_batches++;
    for (int i = 0; i < n; i++) {
      int32_t *m = sh->recv_meta + i * META;
      const struct msghdr *mh = &sh->rmsg[i].msg_hdr;
      unsigned int len = sh->rmsg[i].msg_len;
      memset(m, 0, META * sizeof *m);
      if ((mh->msg_flags & MSG_TRUNC) != 0 || len > SLOT) {
        m[0] = -1;
        s->rx_truncated++;
        continue;
      }
      m[0] = (int32_t)len;
      const struct sockaddr_storage *a = &sh->raddr[i];
      if (a->ss_family == AF_INET && mh->msg_namelen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
        m[1] = ntohs(a4->sin_port);
        m[2] = 4;
        memcpy(m + 4, &a4->sin_addr, 4);
      } else if (a->ss_family == AF_INET6 && mh->msg_namelen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
        m[1] = ntohs(a6->sin6_port);
        m[2] = 6;
        memcpy(m + 4, &a6->sin6_addr, 16);
      } else {
        m[0] = -1; /* no usable source address: cannot be answered, skip it */
        s->rx_truncated++;
        continue;
      }
      s->rx_packets++;
    }
    napi_value arg, result;
    napi_create_int32(env, n, &arg);
    if (napi_make_callback(env, s->async, self, cb, 1, &arg, &result) == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
      break;
    }
    if (n < BATCH) break;
  }
  napi_close_handle_scope(env, scope);
}

/* Make sure a socket id is free (growing the table if needed); 0 when out of memory. */
static int reserve_id (shared_t *sh) {
  if (sh->n_free > 0) return 1;
  int32_t cap = sh->cap == 0 ? 64 : sh->cap * 2;
  sock_t **socks = realloc(sh->socks, (size_t)cap * sizeof *socks);
  if (socks == NULL) return 0;
  sh->socks = socks;
  int32_t *free_ids = realloc(sh->free_ids, (size_t)cap * sizeof *free_ids);
  if (free_ids == NULL) return 0;
  sh->free_ids = free_ids;
  /* Ids old cap .. cap-1 become free (id 0 stays unused); pushed so the lowest is taken first. */
  for (int32_t id = cap - 1; id >= (sh->cap == 0 ? 1 : sh->cap); id--) { socks[id] = NULL; free_ids[sh->n_free++] = id; }
  if (sh->cap == 0) socks[0] = NULL;
  sh->cap = cap;
  return 1;
}

static int get_int (napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* open(family 4|6, address string, port, bufferSize (0: OS default), ipv6Only, callback(count)[, reusePort]) -> object.
 * reusePort sets SO_REUSEPORT before bind: sockets of one user bound to the same address and port then share it,
 * the kernel hashing each remote address and port to one of them (relay worker processes). */
static napi_value js_open (napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) { napi_throw_type_error(env, NULL, "open(family, address, port, bufferSize, ipv6Only, callback)"); return NULL; }
  int32_t family, port, bufsize;
  bool v6only;
  char address[64];
  size_t alen;
  if (!get_int(env, argv[0], &family) || !get_int(env, argv[2], &port) || !get_int(env, argv[3], &bufsize) ||
      napi_get_value_bool(env, argv[4], &v6only) != napi_ok ||
      napi_get_value_string_latin1(env, argv[1], address, sizeof address, &alen) != napi_ok ||
      (family != 4 && family != 6) || port < 0 || port > 65535 || bufsize < 0) {
    napi_throw_type_error(env, NULL, "open: bad arguments");
    return NULL;
  }
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[5], &t));
  if (t != napi_function) { napi_throw_type_error(env, NULL, "open: callback must be a function"); return NULL; }
  bool reuseport = false;
  if (argc >= 7 && napi_get_value_bool(env, argv[6], &reuseport) != napi_ok) {
    napi_throw_type_error(env, NULL, "open: reusePort must be a boolean");
    return NULL;
  }

  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  char detail[96];
  snprintf(detail, sizeof detail, "%s:%d", address, port);
  if (family == 4) {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, address, &a4->sin_addr) != 1) { throw_errno(env, EINVAL, "bind", detail); return NULL; }
    sslen = sizeof *a4;
  } else {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, address, &a6->sin6_addr) != 1) { throw_errno(env, EINVAL, "bind", detail); return NULL; }
    sslen = sizeof *a6;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { throw_errno(env, errno, "socket", detail); return NULL; }
  int on = v6only ? 1 : 0;
  if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) {
    int err = errno; close(fd); throw_errno(env, err, "setsockopt", "IPV6_V6ONLY"); return NULL;
  }
  if (bufsize > 0) {
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize) != 0) {
      int err = errno; close(fd); throw_errno(env, err, "setsockopt", "SO_RCVBUF/SO_SNDBUF"); return NULL;
    }
  }
  int one = 1;
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int err = errno; close(fd); throw_errno(env, err, "setsockopt", "SO_REUSEPORT"); return NULL;
  }
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
    int err = errno; close(fd); throw_errno(env, err, "bind", detail); return NULL;
  }
  struct sockaddr_storage local;
  socklen_t llen = sizeof local;
  char lname[INET6_ADDRSTRLEN] = "";
  int lport = 0;
  if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0) {
    int err = errno; close(fd); throw_errno(env, err, "getsockname", detail); return NULL;
  }
  if (local.ss_family == AF_INET) {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&local;
    inet_ntop(AF_INET, &a4->sin_addr, lname, sizeof lname);
    lport = ntohs(a4->sin_port);
  } else {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&local;
    inet_ntop(AF_INET6, &a6->sin6_addr, lname, sizeof lname);
    lport = ntohs(a6->sin6_port);
  }

  sock_t *s = calloc(1, sizeof *s);
  if (s == NULL) { close(fd); napi_throw_error(env, "ENOMEM", "natkit_udp: out of memory"); return NULL; }
  s->env = env;
  s->fd = fd;
  s->family = family == 4 ? AF_INET : AF_INET6;

  shared_t *sh = NULL;
  if (napi_get_instance_data(env, (void **)&sh) != napi_ok || sh == NULL || !reserve_id(sh)) {
    close(fd);
    free(s);
    napi_throw_error(env, "ENOMEM", "natkit_udp: out of memory");
    return NULL;
  }
  s->shared = sh;

  napi_value result, handle, resource, name, v;
  napi_ref cbref = NULL;
  int ok = napi_create_object(env, &resource) == napi_ok &&
           napi_create_reference(env, resource, 1, &s->resource) == napi_ok &&
           napi_create_reference(env, argv[5], 1, &cbref) == napi_ok &&
           napi_create_string_latin1(env, "natkit:udp", NAPI_AUTO_LENGTH, &name) == napi_ok &&
           napi_async_init(env, resource, name, &s->async) == napi_ok;
  s->callback = cbref;
  if (!ok) {
    release_refs(s);
    close(fd);
    free(s);
    throw_last(env, "open");
    return NULL;
  }
  uv_loop_t *loop;
  int rc;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || (rc = uv_poll_init(loop, &s->poll, fd)) != 0) {
    release_refs(s);
    close(fd);
    free(s);
    napi_throw_error(env, "ERR_NATKIT_NATIVE", "natkit_udp: uv_poll_init failed");
    return NULL;
  }
  s->poll.data = s;
  /* From here the uv handle exists: every failure path must go through stop_io so it is uv_close()d. */
  s->finalized = 1; /* until the external owns it */
  if ((rc = uv_poll_start(&s->poll, UV_READABLE, on_readable)) != 0 ||
      napi_create_external(env, s, on_finalize, NULL, &handle) != napi_ok) {
    release_refs(s);
    stop_io(s);
    napi_throw_error(env, "ERR_NATKIT_NATIVE", "natkit_udp: cannot start polling the socket");
    return NULL;
  }
  s->finalized = 0;
  s->id = sh->free_ids[--sh->n_free]; /* reserved above */
  sh->socks[s->id] = s;
  napi_add_env_cleanup_hook(env, on_env_cleanup, s);

  CHECK(napi_create_object(env, &result));
  CHECK(napi_set_named_property(env, result, "handle", handle));
  CHECK(napi_create_int32(env, s->id, &v));
  CHECK(napi_set_named_property(env, result, "id", v));
  CHECK(napi_create_string_latin1(env, lname, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, result, "address", v));
  CHECK(napi_create_int32(env, lport, &v));
  CHECK(napi_set_named_property(env, result, "port", v));
  return result;
}

static sock_t *get_sock (napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "natkit_udp: not a socket handle");
    return NULL;
  }
  return (sock_t *)p;
}

/* Fill the sockaddr and iovec of shared send slot k for socket s from metadata m; 0 on success, else an errno. */
static int fill_dest (shared_t *sh, sock_t *s, int k, const int32_t *m) {
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

/* Send shared slots 0..n-1 on s with sendmmsg; the errno of the first failure other than EAGAIN, or 0. */
static int send_slots (shared_t *sh, sock_t *s, int n) {
  int first_err = 0;
  int i = 0;
  while (i < n) {
    int r = sendmmsg(s->fd, sh->smsg + i, (unsigned int)(n - i), MSG_DONTWAIT);
    s->tx_batches++;
    if (r > 0) { s->tx_packets += r; i += r; continue; }
    int err = r == 0 ? EAGAIN : errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) { s->tx_drops += n - i; break; }
    /* This datagram failed (EMSGSIZE, ENETUNREACH, EACCES, ...): count it and go on with the rest. */
    s->tx_errors++;
    s->last_tx_errno = err;
    if (first_err == 0) first_err = err;
    i++;
  }
  return first_err;
}

/*
 * flush(count) -> 0, or the errno of the first failure other than EAGAIN (those are counted as drops). Sends the
 * first `count` datagrams of the shared send buffer: one sendmmsg run per socket, each socket's datagrams in queue
 * order. Datagrams of a socket that has been closed are dropped.
 */
static napi_value js_flush (napi_env env, napi_callback_info info) {
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

/* buffers() -> { recv, recvMeta, send, sendMeta }: this environment's shared buffers, created on the first call. */
static napi_value js_buffers (napi_env env, napi_callback_info info) {
  (void)info;
  shared_t *sh = NULL;
  CHECK(napi_get_instance_data(env, (void **)&sh));
  if (sh == NULL || !ensure_shared(env, sh)) { throw_last(env, "buffers (allocating shared buffers)"); return NULL; }
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  const struct { const char *name; napi_ref ref; } fields[] = {
    { "recv", sh->recv_ab }, { "recvMeta", sh->recv_meta_ab }, { "send", sh->send_ab }, { "sendMeta", sh->send_meta_ab }
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    CHECK(napi_get_reference_value(env, fields[i].ref, &v));
    CHECK(napi_set_named_property(env, out, fields[i].name, v));
  }
  return out;
}

static napi_value js_close (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "close(handle)"); return NULL; }
  sock_t *s = get_sock(env, argv[0]);
  if (s == NULL) return NULL;
  if (!s->closing) {
    napi_remove_env_cleanup_hook(env, on_env_cleanup, s);
    stop_io(s);
  }
  return NULL;
}

static napi_value js_stats (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "stats(handle)"); return NULL; }
  sock_t *s = get_sock(env, argv[0]);
  if (s == NULL) return NULL;
  CHECK(napi_create_object(env, &out));
  const struct { const char *name; double value; } fields[] = {
    { "received", s->rx_packets }, { "receiveBatches", s->rx_batches }, { "receiveTruncated", s->rx_truncated },
    { "receiveErrors", s->rx_errors }, { "sent", s->tx_packets }, { "sendBatches", s->tx_batches },
    { "sendDrops", s->tx_drops }, { "sendErrors", s->tx_errors }
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    CHECK(napi_create_double(env, fields[i].value, &v));
    CHECK(napi_set_named_property(env, out, fields[i].name, v));
  }
  return out;
}

static napi_value constant (napi_env env, napi_value exports, const char *name, int value) {
  napi_value v;
  if (napi_create_int32(env, value, &v) != napi_ok || napi_set_named_property(env, exports, name, v) != napi_ok) return NULL;
  return exports;
}

/* The environment is going away: its sockets no longer use the table (see stop_io); the buffers belong to V8. */
static void free_shared (napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  shared_t *sh = (shared_t *)data;
  free(sh->socks);
  free(sh->free_ids);
  free(sh);
}

NAPI_MODULE_INIT () {
  shared_t *sh = NULL;
  if (napi_get_instance_data(env, (void **)&sh) != napi_ok) return NULL;
  if (sh == NULL) {
    sh = calloc(1, sizeof *sh);
    if (sh == NULL) return NULL;
    sh->env = env;
    if (napi_set_instance_data(env, sh, free_shared, NULL) != napi_ok) { free(sh); return NULL; }
  }
  const napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL },
    { "buffers", NULL, js_buffers, NULL, NULL, NULL, napi_default, NULL },
    { "flush", NULL, js_flush, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  if (constant(env, exports, "BATCH", BATCH) == NULL || constant(env, exports, "SLOT", SLOT) == NULL ||
      constant(env, exports, "META", META) == NULL || constant(env, exports, "SEND_META", SEND_META) == NULL ||
      constant(env, exports, "SEND_BYTES", SEND_BYTES) == NULL) return NULL;
  return exports;
}
