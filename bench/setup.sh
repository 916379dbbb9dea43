# setup.sh: sourced by the benchmarks (run.sh, backlog.sh): a fresh store for one run.
# bench_store DIR: DIR/stockgate.conf (store in DIR, reports to DIR/outbox, the sections read
# from standard input appended), with dealer D1 (key $KEY), user $USER and warehouse $WH.
# Needs SG, KEY, USER, WH and B (the log goes to $B/setup.log).
bench_store() {
	local d=$1
	bench_fresh "$d"; mkdir -p "$d/outbox"
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$d"
		printf '[report]\nurl = dir:%s/outbox\nfrom = "Stock API" <api@stock.example>\n\n' "$d"
		cat
	} >"$d/stockgate.conf"
	chmod 600 "$d/stockgate.conf"
	printf 'Код склада;Адрес;Контакты\r\n%s;г. Курск, ул. Ленина, 5;+7 900 000-00-00\r\n' "$WH" |
		iconv -f UTF-8 -t WINDOWS-1251 >"$d/warehouses.csv"
	"$SG" -c "$d/stockgate.conf" dealer add D1 --name "Dealer One" --key "$KEY" &&
		"$SG" -c "$d/stockgate.conf" user add "$USER" --dealer D1 &&
		"$SG" -c "$d/stockgate.conf" import warehouses --dealer D1 "$d/warehouses.csv"
} >"$B/setup.log" 2>&1

# bench_fresh DIR: DIR gone, put aside in $B/trash (a rename) rather than removed: on an ext4
# without a journal, making a file steps over every inode freed in the last minute or more, so
# removing one run's thousands of files slowed the next run's creates (stockgate's and mbsync's
# alike). bench_trash_empty removes them all once the runs are done.
bench_fresh() {
	[ -e "$1" ] || return 0
	mkdir -p "$B/trash"
	mv "$1" "$(mktemp -d "$B/trash/XXXXXX")/"
}
bench_trash_empty() { rm -rf "$B/trash"; }
