#!/bin/sh
# A job command for `cjobs work thumbnail -- examples/make-thumbnail.sh`:
# reads the job's data, {"src":"cat.png"}, on standard input, and prints its
# result, {"src":"cat.png","thumb":"cat-64.png"}, on standard output, which
# becomes the job's final data. With ImageMagick's `convert` installed and
# the file there, it really makes the 64-pixel thumbnail; otherwise it only
# names it. The job's type, id and lock are in $CJ_JOB_TYPE, $CJ_JOB_ID and
# $CJ_JOB_LOCK.
set -eu
data=$(cat)
src=$(printf '%s' "$data" | sed -n 's/.*"src" *: *"\([^"\\]*\)".*/\1/p')
if [ -z "$src" ]; then
	echo "make-thumbnail: no \"src\" in $data" >&2
	exit 1
fi
thumb="${src%.*}-64.${src##*.}"
if command -v convert >/dev/null 2>&1 && [ -f "$src" ]; then
	convert "$src" -thumbnail 64x64 "$thumb"
fi
printf '{"src":"%s","thumb":"%s"}\n' "$src" "$thumb"
