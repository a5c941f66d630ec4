import fluvial as faust
from fluvial import web


class Sentence(faust.Record):
    text: str


app = faust.App('word-counts', broker='kafka://localhost')
sentences = app.topic('sentences', value_type=Sentence)
word_counts = app.Table('word_counts', default=int)


@app.agent(sentences)
async def count_words(stream):
    async for sentence in stream:
        for word in sentence.text.split():
            await count_word.send(key=word, value=word)


@app.agent()
async def count_word(words):
    async for word in words:
        word_counts[word] += 1


# GET /count/{word}/ is answered by the worker that holds the word's count,
# whichever worker receives the request.
@app.page('/count/{word}/')
@app.table_route(table=word_counts, match_info='word')
async def get_count(web, request, word):
    return web.json({word: word_counts[word]})


@app.page('/sentences/')
class Sentences(web.View):
    async def post(self, request):
        body = await request.json()
        await sentences.send(value=Sentence(text=body['text']))
        return self.json({'queued': True}, status=202)


if __name__ == '__main__':
    app.main()
