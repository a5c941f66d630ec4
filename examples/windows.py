import fluvial as faust


class PageView(faust.Record):
    page: str


def closed(key, count):
    page, (start, _end) = key
    print(f'{page}: {count} views in the minute from {start:.0f}')


app = faust.App('page-views', broker='kafka://localhost')
views_topic = app.topic('page-views', value_type=PageView)

# One count per page per minute (event time), kept for an hour; a minute
# closes when the stream passes its end, and its final count is reported.
views = app.Table('views_per_minute', default=int, on_window_close=closed).tumbling(
    60, expires=3600,
)


@app.agent(views_topic)
async def count_views(page_views):
    async for view in page_views.group_by(PageView.page):
        views[view.page] += 1


if __name__ == '__main__':
    app.main()
