/* natkit_udp — Sockets: open (bind, poll), close, stats, and the lifecycle of a socket and its JS references; errors thrown to JS. See udp_batch.h for the design and layouts. */
#include "udp_batch.h"
#include <netinet/udp.h>

void throw_last (napi_env env, const char *what) {
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
void throw_errno (napi_env env, int err, const char *syscall, const char *detail) {
  const char *name = uv_err_name(-err);
  char msg[320];
  snprintf(msg, sizeof msg, "%s %s %s (%s)", syscall, name, detail, strerror(err));
  napi_throw_error(env, name, msg);
}

void maybe_free (sock_t *s) {
  if (s->handle_closed && s->finalized) free(s);
}

void on_handle_closed (uv_handle_t *h) {
  sock_t *s = (sock_t *)h->data;
  /* JS references are released here, not in close(): close() may be called from a handler inside this socket's
   * own callback, which still uses the callback and the async context. */
  if (!s->env_gone) release_refs(s);
  s->handle_closed = 1;
  maybe_free(s);
}

void on_finalize (napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  sock_t *s = (sock_t *)data;
  s->finalized = 1;
  maybe_free(s);
}

/* Stop polling and close the fd. Safe to call twice. JS references are released once the handle has closed. */
void stop_io (sock_t *s) {
  if (s->closing) return;
  s->closing = 1;
  /* At env teardown the shared state may already be gone; nothing will flush then anyway. */
  if (!s->env_gone && s->id > 0) {
    shared_t *sh = s->shared;
    /* What the fast path queued (for this socket or any other) leaves now, before the id can name another socket. */
    fast_flush_pending(sh);
    fast_purge_socket(sh, s->id);
    sh->socks[s->id] = NULL;
    sh->free_ids[sh->n_free++] = s->id;
  }
  s->id = 0;
  /* uv_close invalidates the fd in epoll synchronously, so closing the fd right after is safe. */
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
  close(s->fd);
  s->fd = -1;
}

void on_env_cleanup (void *arg) {
  sock_t *s = (sock_t *)arg;
  s->env_gone = 1;
  stop_io(s);
}

void release_refs (sock_t *s) {
  napi_env env = s->env;
  napi_ref *refs[] = { &s->callback, &s->resource };
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
    if (*refs[i] != NULL) napi_delete_reference(env, *refs[i]);
    *refs[i] = NULL;
  }
  if (s->async != NULL) napi_async_destroy(env, s->async);
  s->async = NULL;
}

void report_error (sock_t *s, napi_value cb, napi_value self, int err) {
  napi_value arg, result;
  napi_create_int32(s->env, -err, &arg);
  if (napi_make_callback(s->env, s->async, self, cb, 1, &arg, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(s->env, &exc);
    napi_fatal_exception(s->env, exc);
  }
}

int get_int (napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* open(family 4|6, address string, port, bufferSize (0: OS default), ipv6Only, callback(count)[, reusePort]) -> object.
 * reusePort sets SO_REUSEPORT before bind: sockets of one user bound to the same address and port then share it,
 * the kernel hashing each remote address and port to one of them (relay worker processes). */
napi_value js_open (napi_env env, napi_callback_info info) {
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
  /* UDP GSO (udp_pending.c) only where the kernel knows the option (Linux 4.18+). */
  int gso_probe = 0;
  socklen_t gso_len = sizeof gso_probe;
  int gso_off = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &gso_probe, &gso_len) != 0;
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
  s->gso_off = gso_off;

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
  s->gen = ++sh->next_gen;
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

sock_t *get_sock (napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "natkit_udp: not a socket handle");
    return NULL;
  }
  return (sock_t *)p;
}

napi_value js_close (napi_env env, napi_callback_info info) {
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

napi_value js_stats (napi_env env, napi_callback_info info) {
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
    { "sendDrops", s->tx_drops }, { "sendErrors", s->tx_errors },
    { "gsoMessages", s->tx_gso_messages }, { "gsoDatagrams", s->tx_gso_datagrams }
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    CHECK(napi_create_double(env, fields[i].value, &v));
    CHECK(napi_set_named_property(env, out, fields[i].name, v));
  }
  return out;
}
