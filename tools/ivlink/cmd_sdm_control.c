/* SPDX-License-Identifier: MIT */
/*
 * ivlink sdm: the control socket of a running master or slave (docs/sdm.md
 * §7): the daemon's side, and the client's (send, status, max-slaves).
 *
 * Control protocol: a UNIX stream socket (mode 0600); the client sends one
 * line ("send TYPE SLAVE P0 P1", "status" or "max-slaves N"), the daemon
 * answers one JSON line and closes.  SLAVE "all" travels as 4294967295
 * (IVL_SDM_ALL); the answer then carries "slaves": how many it reached.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmd_sdm.h"

/* ---- control socket -------------------------------------------------------- */

int sdm_ctl_listen(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat sb;
	int fd;

	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 8) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static json_t *status_json(struct sdm_daemon *d)
{
	struct ivl_sdm_config c;
	struct ivl_sdm_stats st;
	json_t *o, *sl = json_array();
	int state = ivl_sdm_state(d->sdm);

	ivl_sdm_get_config(d->sdm, &c);
	ivl_sdm_get_stats(d->sdm, &st);
	if (c.master)
		for (uint16_t i = 1; i <= IVL_SDM_MAX_SLAVES; i++)
			if (ivl_sdm_slave_present(d->sdm, i))
				json_array_append_new(sl, json_integer(i));
	o = json_pack("{s:b, s:s, s:i, s:s, s:i, s:i, s:o}", "ok", 1, "role",
		      c.master ? "master" : "slave", "id", ivl_sdm_id(d->sdm), "state",
		      state ? strerror(-state) : "up", "max_slaves", c.max_slaves, "current_slaves",
		      c.current_slaves, "slaves", sl);
	json_object_set_new(
	    o, "stats",
	    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "sent",
		      (json_int_t)st.sent, "received", (json_int_t)st.received, "dropped_forged",
		      (json_int_t)st.dropped_forged, "dropped_invalid",
		      (json_int_t)st.dropped_invalid, "dropped_action",
		      (json_int_t)st.dropped_action, "conn_accepted", (json_int_t)st.conn_accepted,
		      "conn_refused", (json_int_t)st.conn_refused, "conn_dropped",
		      (json_int_t)st.conn_dropped, "keepalive_timeouts",
		      (json_int_t)st.keepalive_timeouts, "reconnects", (json_int_t)st.reconnects));
	return o;
}

static const char *send_error(int r)
{
	switch (r) {
	case -ENOENT:
		return "that slave is not connected";
	case -ENOTCONN:
		return "not registered with a master";
	case -EPERM:
		return "a slave may only signal the master (SLAVE 0), never 'all'";
	case -EINVAL:
		return "invalid signal (the master cannot signal ID 0)";
	case -EAGAIN:
		return "send buffer full (for 'all': of at least one slave; nothing sent), try "
		       "again";
	case -EBADMSG:
		return "malformed control request";
	default:
		return strerror(-r);
	}
}

static json_t *err_json(int r)
{
	return json_pack("{s:b, s:i, s:s}", "ok", 0, "error", -r, "message", send_error(r));
}

static json_t *ctl_command(struct sdm_daemon *d, char *line)
{
	struct ivl_sdm_signal sig = {0};
	char type[16];
	unsigned long long sl, p0, p1, max;
	int t, r;

	if (!strcmp(line, "status"))
		return status_json(d);
	if (sscanf(line, "max-slaves %llu", &max) == 1) {
		r = max <= 0xffff ? ivl_sdm_set_max_slaves(d->sdm, (uint16_t)max) : -ERANGE;
		return r ? err_json(r) : json_pack("{s:b}", "ok", 1);
	}
	if (sscanf(line, "send %15s %llu %llu %llu", type, &sl, &p0, &p1) != 4)
		return err_json(-EBADMSG);
	t = ivl_sdm_type_from_name(type);
	if (t < 0 || sl > UINT32_MAX || p0 > UINT32_MAX || p1 > UINT32_MAX)
		return err_json(-EINVAL);
	sig = (struct ivl_sdm_signal){(uint32_t)t, (uint32_t)sl, {(uint32_t)p0, (uint32_t)p1}};
	r = ivl_sdm_send(d->sdm, &sig);
	if (r < 0)
		return err_json(r);
	if (sig.slave == IVL_SDM_ALL)
		return json_pack("{s:b, s:i}", "ok", 1, "slaves", r);
	return json_pack("{s:b}", "ok", 1);
}

/* One short request per connection; local clients only, so a 1 s receive
 * timeout bounds how long a stuck client can hold the loop. */
void sdm_ctl_serve(struct sdm_daemon *d)
{
	struct timeval tv = {.tv_sec = 1};
	char line[256];
	size_t len = 0;
	json_t *resp;
	char *s;
	int fd;

	fd = accept4(d->ctl, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (len < sizeof(line) - 1) {
		ssize_t n = recv(fd, line + len, sizeof(line) - 1 - len, 0);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = 0;
	line[strcspn(line, "\r\n")] = 0;
	resp = ctl_command(d, line);
	s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	if (s) {
		send(fd, s, strlen(s), MSG_NOSIGNAL);
		send(fd, "\n", 1, MSG_NOSIGNAL);
		free(s);
	}
	close(fd);
}

/* ---- client ----------------------------------------------------------------- */

int sdm_run_client(struct cli_global *g, const struct sdm_args *a)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	char req[128], resp[4096];
	size_t len = 0;
	json_t *j, *ok;
	int fd, ret = EXIT_FAIL;

	if (a->mode == SDM_SEND)
		snprintf(req, sizeof(req), "send %s %llu %llu %llu\n",
			 ivl_sdm_type_name((uint32_t)a->type), (unsigned long long)a->slave,
			 (unsigned long long)a->p[0], (unsigned long long)a->p[1]);
	else if (a->mode == SDM_MAX)
		snprintf(req, sizeof(req), "max-slaves %llu\n", (unsigned long long)a->max_slaves);
	else
		snprintf(req, sizeof(req), "status\n");
	memcpy(sun.sun_path, a->control, strlen(a->control) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		cli_err(g, "control socket %s: %s", a->control, strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		cli_err(g, "control socket: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = recv(fd, resp + len, sizeof(resp) - 1 - len, 0);

		if (n <= 0 || (len += (size_t)n) == sizeof(resp) - 1)
			break;
	}
	resp[len] = 0;
	j = json_loads(resp, 0, NULL);
	ok = j ? json_object_get(j, "ok") : NULL;
	if (!json_is_boolean(ok)) {
		cli_err(g, "no valid answer from the control socket");
	} else if (!json_is_true(ok)) {
		cli_err(g, "%s", json_string_value(json_object_get(j, "message")));
	} else if (a->mode == SDM_STATUS && g->json) {
		json_object_del(j, "ok");
		ret = json_print(json_incref(j), false);
	} else if (a->mode == SDM_STATUS) {
		json_t *sl = json_object_get(j, "slaves"), *st = json_object_get(j, "stats"), *v;
		const char *k;
		size_t i;

		printf("role %s id %lld state %s\n", json_string_value(json_object_get(j, "role")),
		       json_integer_value(json_object_get(j, "id")),
		       json_string_value(json_object_get(j, "state")));
		printf("max_slaves %lld current_slaves %lld\n",
		       json_integer_value(json_object_get(j, "max_slaves")),
		       json_integer_value(json_object_get(j, "current_slaves")));
		printf("slaves");
		json_array_foreach(sl, i, v) printf(" %lld", json_integer_value(v));
		printf("\n");
		json_object_foreach(st, k, v) printf("%s %lld\n", k, json_integer_value(v));
		ret = fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
	} else if (a->mode == SDM_SEND && a->slave == IVL_SDM_ALL) {
		long long n = json_integer_value(json_object_get(j, "slaves"));

		if (g->json)
			printf("{\"slaves\": %lld}\n", n);
		else
			printf("sent to %lld slave%s\n", n, n == 1 ? "" : "s");
		ret = fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
	} else {
		ret = EXIT_OK;
	}
	json_decref(j);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}
