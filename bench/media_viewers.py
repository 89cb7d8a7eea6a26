# N clients of one camera's media socket (/api/media/NAME) for S seconds: video and audio frames
# each received, `skipped` messages, and gaps in the audio stamps (> 25 ms between packets).
#   python3 bench/media_viewers.py ws://127.0.0.1:8350/api/media/demo-clean 20 32
# A server that asks: LOCKSTEP_TOKEN=… (the demo's run token, from the URL it prints).
import asyncio, os, websockets, time, struct, sys
TOKEN=os.environ.get('LOCKSTEP_TOKEN')
HEADERS={'Authorization': f'Bearer {TOKEN}'} if TOKEN else None
async def one(url, secs, out):
    async with websockets.connect(url, max_size=None, additional_headers=HEADERS) as ws:
        end=time.monotonic()+secs; v=a=sk=0; last=None; gaps=0
        while time.monotonic()<end:
            m=await asyncio.wait_for(ws.recv(), 5)
            if isinstance(m,str):
                if '"skipped"' in m: sk+=1
                continue
            if m[0]==1: v+=1
            else:
                a+=1; ts=struct.unpack('>q',m[2:10])[0]
                if last is not None and ts-last>25000: gaps+=1
                last=ts
        out.append((v,a,sk,gaps))
async def main(url,n,secs):
    out=[]
    await asyncio.gather(*[one(url,secs,out) for _ in range(n)])
    print('viewers',len(out),'video',min(o[0] for o in out),max(o[0] for o in out),'audio',min(o[1] for o in out),'skipped msgs',sum(o[2] for o in out),'audio gaps',sum(o[3] for o in out))
asyncio.run(main(sys.argv[1],int(sys.argv[2]),float(sys.argv[3])))
