import random

import fluvial as faust

app = faust.App('live-clicks', broker='kafka://localhost')
clicks = app.topic('clicks', key_type=str, value_type=str)
clicks_per_page = app.Table('clicks_per_page', default=int)


@app.agent(clicks)
async def count_clicks(stream):
    async for page in stream:  # keyed by page, like the table
        clicks_per_page[page] += 1


@app.timer(interval=0.2)
async def simulate_clicks(app):
    page = random.choice(['home', 'pricing', 'docs', 'blog'])
    await clicks.send(key=page, value=page)


# A websocket of your own: answers each message upper-cased.
@app.websocket('/shout/')
async def shout(web, ws):
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text.upper())


# A page that follows the table's live feed: no polling.
DASHBOARD = """<!doctype html>
<title>Clicks per page</title>
<h1>Clicks per page</h1>
<table id="counts"></table>
<script>
  const rows = {};
  const feed = new WebSocket(`ws://${location.host}/table/clicks_per_page/live/`);
  feed.onmessage = (message) => {
    const change = JSON.parse(message.data);
    let row = rows[change.key];
    if (!row) {
      row = rows[change.key] = document.getElementById('counts').insertRow();
      row.insertCell().textContent = change.key;
      row.insertCell();
    }
    row.cells[1].textContent = change.deleted ? '-' : change.value;
  };
</script>
"""


@app.page('/dashboard/')
async def dashboard(web, request):
    return web.html(DASHBOARD)


if __name__ == '__main__':
    app.main()
