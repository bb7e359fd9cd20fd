/*
 * The dashboard at / (ui.c): the files of server/ui/, compiled into the
 * binary by cmake/embed.cmake, and the overview stream the page listens to.
 */
#ifndef CJ_SERVER_UI_H
#define CJ_SERVER_UI_H

#include <stddef.h>

/* One file of the dashboard. */
struct srv_ui_asset {
	const char *name;  /* "app.js": its path under server/ui/ */
	const char *ctype; /* its Content-Type */
	const char *etag;  /* a quoted hash of its bytes */
	const unsigned char *data;
	size_t len;
};

/* Every file, then an entry with a NULL name (made at build time). */
extern const struct srv_ui_asset srv_ui_assets[];

struct srv_req;

/* Whether `method` `url` (the raw path) asks for one of the dashboard's
 * files: they hold no data, so they are served without the token (a
 * browser cannot send one when it loads a page). */
int srv_ui_is_asset(const char *method, const char *url);

/* GET /: the page. GET /ui/{file}: its other files. */
void srv_h_ui_page(struct srv_req *r);
void srv_h_ui_asset(struct srv_req *r);

/* GET /ui/events: the overview as Server-Sent Events (ui_events.c). */
void srv_h_ui_events(struct srv_req *r);

#endif
