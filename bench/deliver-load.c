/* deliver-load.c: the load of the receiver benchmark: N multipart deliveries of a report from C concurrent keep-alive clients. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port, total, report_size;
static const char *path;
static char *report;
static int next_id, failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int take(void)
{
	int id;
	pthread_mutex_lock(&lock);
	id = next_id < total ? ++next_id : 0;
	pthread_mutex_unlock(&lock);
	return id;
}

static int connect_to(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one response; its status, or -1 when the connection broke. */
static int read_response(int fd)
{
	char buf[8192];
	size_t have = 0;
	char *end;
	long clen = 0;
	int status;

	for (;;) {
		ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = 0;
		if ((end = strstr(buf, "\r\n\r\n")))
			break;
		if (have == sizeof(buf) - 1)
			return -1;
	}
	status = atoi(buf + 9);
	char *cl = strcasestr(buf, "Content-Length:");
	if (cl)
		clen = atol(cl + 15);
	size_t body = have - (size_t)(end + 4 - buf);
	while ((long)body < clen) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0)
			return -1;
		body += (size_t)r;
	}
	return status;
}

static void *client(void *arg)
{
	int fd = -1, id;
	char head[1024], part[512];
	const char *tail = "\r\n--sgbench--\r\n";

	(void)arg;
	while ((id = take())) {
		int n = snprintf(part, sizeof(part),
				 "--sgbench\r\nContent-Disposition: form-data; name=\"uid\"\r\n\r\n%d\r\n"
				 "--sgbench\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nok\r\n"
				 "--sgbench\r\nContent-Disposition: form-data; name=\"file\"; "
				 "filename=\"r.pdf\"\r\nContent-Type: application/pdf\r\n\r\n", id);
		size_t len = (size_t)n + (size_t)report_size + strlen(tail);
		int h = snprintf(head, sizeof(head),
				 "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
				 "boundary=sgbench\r\nContent-Length: %zu\r\n\r\n", path, len);
		for (int attempt = 0; attempt < 3; attempt++) {
			if (fd < 0 && (fd = connect_to()) < 0)
				continue;
			if (send_all(fd, head, (size_t)h) == 0 && send_all(fd, part, (size_t)n) == 0 &&
			    send_all(fd, report, (size_t)report_size) == 0 &&
			    send_all(fd, tail, strlen(tail)) == 0) {
				int st = read_response(fd);
				if (st == 200)
					goto next;
				if (st > 0) {
					pthread_mutex_lock(&lock);
					failures++;
					pthread_mutex_unlock(&lock);
					goto next;
				}
			}
			close(fd);
			fd = -1;
		}
		pthread_mutex_lock(&lock);
		failures++;
		pthread_mutex_unlock(&lock);
next:;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	int conc;
	pthread_t *th;

	if (argc != 6) {
		fprintf(stderr, "usage: deliver-load PORT PATH DELIVERIES CLIENTS REPORT_BYTES\n");
		return 64;
	}
	port = atoi(argv[1]);
	path = argv[2];
	total = atoi(argv[3]);
	conc = atoi(argv[4]);
	report_size = atoi(argv[5]);
	report = malloc((size_t)report_size);
	memcpy(report, "%PDF-1.4\n", 9);
	for (int i = 9; i < report_size; i++)
		report[i] = (char)('a' + i % 26);
	th = calloc((size_t)conc, sizeof(*th));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < conc; i++)
		pthread_create(&th[i], NULL, client, NULL);
	for (int i = 0; i < conc; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* deliveries/s, seconds, failures */
	printf("%.1f %.3f %d\n", (double)total / s, s, failures);
	return failures ? 1 : 0;
}
